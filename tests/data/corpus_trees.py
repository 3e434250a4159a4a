"""Small corpora written with each corpus's real naming conventions, real WAV files and known contents.

Each builder returns a :class:`Tree` whose ``files`` list says, for every file written, what a reader
should make of it; tests derive every expected count from that list, never from the reader.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass
class File:
    path: Path
    id: str
    speaker: str
    gender: str
    label: str  # native label
    emotion: str | None  # class code, None when the label is outside the 4 classes
    skipped: str | None = None  # reason the reader skips it on purpose (song, video), before labels
    fold: int | None = None


@dataclass
class Tree:
    root: Path
    files: list[File] = field(default_factory=list)
    duplicate: File | None = None  # written as a byte copy of `duplicate_of`
    duplicate_of: File | None = None
    unreadable: File | None = None
    stereo: File | None = None

    def kept(self, *, drop_unreadable: bool = True) -> list[File]:
        bad = {self.unreadable.path} if (self.unreadable and drop_unreadable) else set()
        dup = {self.duplicate.path} if self.duplicate else set()
        return [f for f in self.files if f.emotion and not f.skipped and f.path not in bad | dup]

    def counts(self) -> dict:
        kept = self.kept()
        emotions = Counter(f.emotion for f in kept)
        genders = Counter(f.gender for f in kept)
        return {
            "total": len(kept),
            "by_emotion": {c: emotions[c] for c in ("neu", "hap", "ang", "sad") if emotions[c]},
            "by_gender": {"F": genders["F"], "M": genders["M"]},
            "by_speaker": dict(sorted(Counter(f.speaker for f in kept).items())),
        }


def _write(path: Path, rng: np.random.Generator, rate: int = 16_000, seconds: float = 0.4, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(rate * seconds)
    shape = (n, channels) if channels > 1 else (n,)
    sf.write(path, rng.uniform(-0.3, 0.3, shape).astype(np.float32), rate, subtype="PCM_16")


def _damage(tree: Tree, rng: np.random.Generator, dup: File, original: File, bad: File, stereo: File) -> None:
    """Make ``dup`` a byte copy of ``original``, ``bad`` unreadable and ``stereo`` a 2-channel file."""
    if dup.path < original.path:  # readers keep the first path in sorted order
        dup, original = original, dup
    shutil.copyfile(original.path, dup.path)
    bad.path.write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    rate = sf.info(str(stereo.path)).samplerate
    _write(stereo.path, rng, rate=rate, channels=2)
    tree.duplicate, tree.duplicate_of, tree.unreadable, tree.stereo = dup, original, bad, stereo


RAVDESS_EMOTIONS = {"01": "neu", "02": None, "03": "hap", "04": "sad", "05": "ang", "06": None, "07": None, "08": None}


def ravdess_tree(base: Path, actors: range = range(1, 7), seed: int = 0, damaged: bool = True) -> Tree:
    """``Actor_NN/03-01-EE-II-SS-RR-NN.wav`` at 48 kHz, plus a song file and a video-only name to skip."""
    rng = np.random.default_rng(seed)
    tree = Tree(base / "RAVDESS")
    for actor in actors:
        folder = tree.root / f"Actor_{actor:02d}"
        gender = "M" if actor % 2 else "F"
        for emo, code in RAVDESS_EMOTIONS.items():
            for intensity in ("01",) if emo == "01" else ("01", "02"):
                for statement in ("01", "02"):
                    stem = f"03-01-{emo}-{intensity}-{statement}-01-{actor:02d}"
                    _write(folder / f"{stem}.wav", rng, rate=48_000)
                    tree.files.append(File(folder / f"{stem}.wav", stem, folder.name, gender, emo, code))
        for stem, why in ((f"03-02-05-01-01-01-{actor:02d}", "song"), (f"02-01-05-01-01-01-{actor:02d}", "not audio")):
            _write(folder / f"{stem}.wav", rng, rate=48_000)
            tree.files.append(File(folder / f"{stem}.wav", stem, folder.name, gender, "05", "ang", skipped=why))
    if damaged:
        kept = [f for f in tree.files if f.emotion and not f.skipped]
        _damage(tree, rng, dup=kept[5], original=kept[0], bad=kept[9], stereo=kept[13])
    return tree


CREMAD_EMOTIONS = {"ANG": "ang", "DIS": None, "FEA": None, "HAP": "hap", "NEU": "neu", "SAD": "sad"}


def cremad_tree(base: Path, actors: range = range(1001, 1007), seed: int = 0, damaged: bool = True) -> Tree:
    """``AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav`` and ``VideoDemographics.csv`` (sex per actor)."""
    rng = np.random.default_rng(seed)
    tree = Tree(base / "CREMA-D")
    sexes = {actor: ("Female" if i % 2 else "Male") for i, actor in enumerate(actors)}
    rows = ["ActorID,Age,Sex,Race,Ethnicity"] + [f"{a},30,{s},Caucasian,Not Hispanic" for a, s in sexes.items()]
    tree.root.mkdir(parents=True)
    (tree.root / "VideoDemographics.csv").write_text("\n".join(rows) + "\n")
    for actor in actors:
        for sentence in ("DFA", "IEO", "TIE"):
            for emo, code in CREMAD_EMOTIONS.items():
                level = "XX" if sentence != "IEO" or emo == "NEU" else "HI"
                stem = f"{actor}_{sentence}_{emo}_{level}"
                path = tree.root / "AudioWAV" / f"{stem}.wav"
                _write(path, rng)
                tree.files.append(File(path, stem, str(actor), sexes[actor][0], emo, code))
    if damaged:
        kept = [f for f in tree.files if f.emotion]
        _damage(tree, rng, dup=kept[3], original=kept[1], bad=kept[7], stereo=kept[11])
    return tree


EMODB_EMOTIONS = {"W": "ang", "L": None, "E": None, "A": None, "F": "hap", "T": "sad", "N": "neu"}
EMODB_SPEAKERS = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "13": "F"}


def emodb_tree(base: Path, seed: int = 0, damaged: bool = True) -> Tree:
    """``wav/<speaker><text><emotion><version>.wav``, six of the ten actors."""
    rng = np.random.default_rng(seed)
    tree = Tree(base / "emodb")
    for speaker, gender in EMODB_SPEAKERS.items():
        for text in ("a01", "a02", "b01"):
            for letter, code in EMODB_EMOTIONS.items():
                stem = f"{speaker}{text}{letter}a"
                path = tree.root / "wav" / f"{stem}.wav"
                _write(path, rng)
                tree.files.append(File(path, stem, speaker, gender, letter, code))
    if damaged:
        kept = [f for f in tree.files if f.emotion]
        _damage(tree, rng, dup=kept[2], original=kept[0], bad=kept[6], stereo=kept[10])
    return tree


MANIFEST_LABELS = ["neutral", "Happy", "ang", "sadness", "fear"]


def manifest_tree(base: Path, speakers: int = 6, per_speaker: int = 20, seed: int = 0, folds: bool = True) -> Tree:
    """``clips/<speaker>/<n>.wav`` listed in ``manifest.csv`` (relative paths; a fold per speaker)."""
    rng = np.random.default_rng(seed)
    tree = Tree(base / "mycorpus")
    lines = ["path,emotion,gender,speaker" + (",fold" if folds else "")]
    aliases = {"neutral": "neu", "happy": "hap", "ang": "ang", "sadness": "sad"}
    for s in range(speakers):
        speaker, gender = f"spk{s}", "female" if s % 2 else "male"
        for n in range(per_speaker):
            label = MANIFEST_LABELS[n % len(MANIFEST_LABELS)]
            rel = f"clips/{speaker}/{n:03d}.wav"
            _write(tree.root / rel, rng)
            fold = s // 2 + 1 if folds else None
            lines.append(f"{rel},{label},{gender},{speaker}" + (f",{fold}" if folds else ""))
            tree.files.append(
                File(
                    tree.root / rel,
                    rel[:-4],
                    speaker,
                    gender[0].upper(),
                    label.lower(),
                    aliases.get(label.lower()),
                    fold=fold,
                )
            )
    (tree.root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return tree
