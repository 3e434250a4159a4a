"""Build small IEMOCAP-format trees for tests.

A tree is described by a spec, a tuple of :class:`Utt`; :func:`build_tree` writes it in the release's
layout and syntax (EmoEvaluation files with header, consensus and annotator lines; decoy files in the
``Categorical/``, ``Attribute/`` and ``Self-evaluation/`` sub-folders; 16 kHz mono 16-bit WAVs), and
:meth:`BuiltTree.counts` states what a reader must find, computed from the spec alone.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmark.data.records import DEFAULT_CLASS_MAP

SAMPLE_RATE = 16_000
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
MARKER = "GEMO_SYNTHETIC.json"

# How annotators spell each raw label in their own lines (and in the Categorical/ files).
CATEGORY_WORDS = {
    "neu": "Neutral",
    "hap": "Happiness",
    "exc": "Excited",
    "ang": "Anger",
    "sad": "Sadness",
    "fru": "Frustration",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
    "xxx": "Neutral",
}

# Dialog name forms of the release, including the script ones with a trailing part and letter.
DIALOG_SUFFIXES = ("impro01", "script01_1b", "impro05b", "script02_2")

# Labels drawn for generated specs: the 4 classes, exc (merged into hap), and labels the default map drops.
KEPT_LABELS = ("neu", "hap", "exc", "ang", "sad")
SPEC_LABELS = (*KEPT_LABELS, "neu", "sad", "fru", "xxx", "sur")


@dataclass(frozen=True)
class Utt:
    """One utterance of a spec.

    Attributes:
        session: the session folder it is written under.
        dialog: dialog name (``Ses01F_impro01``).
        gender: the speaker's gender, written as the letter after the id's last underscore.
        turn: turn number, written as three digits.
        label: raw consensus label.
        seconds: length of the WAV written for it.
        start: start time written on the consensus line.
        vad: valence, activation, dominance written on the consensus line.
    """

    session: int
    dialog: str
    gender: str
    turn: int
    label: str
    seconds: float = 0.25
    start: float = 0.0
    vad: tuple[float, float, float] = (2.5, 2.5, 2.5)

    @property
    def utt_id(self) -> str:
        return f"{self.dialog}_{self.gender}{self.turn:03d}"

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def frames(self) -> int:
        return round(self.seconds * SAMPLE_RATE)


def make_spec(
    sessions: Iterable[int] = (1, 2, 3, 4, 5), *, dialogs: int = 2, turns: int = 6, seed: int = 0
) -> tuple[Utt, ...]:
    """A varied spec: every session gets ``dialogs`` dialogs of ``turns`` utterances.

    Dialogs alternate the mocap letter (``Ses01F_``/``Ses01M_``), and speakers are drawn so that about
    two thirds of the turns are spoken by the actor without markers: counting genders by the mocap
    letter then gives other numbers than counting by the speaker. Turn 0 of every dialog is such a turn
    with a 4-class label (``Ses01F_impro01_M000``, ``neu``), so every tree holds one.
    """
    rng = random.Random(seed)
    spec = []
    for session in sessions:
        for d in range(dialogs):
            mocap = "FM"[d % 2]
            other = "M" if mocap == "F" else "F"
            dialog = f"Ses{session:02d}{mocap}_{DIALOG_SUFFIXES[(session - 1 + d) % len(DIALOG_SUFFIXES)]}"
            start = round(rng.uniform(0.5, 3.0), 4)
            for turn in range(turns):
                gender = other if turn == 0 or rng.random() < 2 / 3 else mocap
                seconds = rng.choice((0.2, 0.25, 0.3, 0.4, 0.5))
                vad = (round(rng.uniform(1, 5), 4), round(rng.uniform(1, 5), 4), round(rng.uniform(1, 5), 4))
                label = rng.choice(KEPT_LABELS if turn == 0 else SPEC_LABELS)
                spec.append(Utt(session, dialog, gender, turn, label, seconds, start, vad))
                start = round(start + seconds + rng.uniform(0.1, 2.0), 4)
    return tuple(spec)


def consensus_line(utt: Utt) -> str:
    """The consensus line of ``utt`` in the release's syntax."""
    v, a, d = utt.vad
    return f"[{utt.start:.4f} - {utt.end:.4f}]\t{utt.utt_id}\t{utt.label}\t[{v:.4f}, {a:.4f}, {d:.4f}]"


def annotator_lines(utt: Utt) -> list[str]:
    """Two categorical votes, a self-assessment on odd turns, and one attribute vote."""
    word = CATEGORY_WORDS[utt.label]
    lines = [f"C-E2:\t{word};\t()", f"C-E3:\t{word}; Frustration;\t(mostly {word.lower()})"]
    if utt.turn % 2:
        lines.append(f"C-{utt.gender}1:\tNeutral;\t()")
    lines.append("A-E3:\tval 3; act 2; dom  2;\t()")
    return lines


def label_file_text(utts: Sequence[Utt], newline: str = "\n") -> str:
    """An EmoEvaluation file: header, blank line, then one block per utterance, blocks separated by blanks."""
    lines = [HEADER, ""]
    for utt in utts:
        lines += [consensus_line(utt), *annotator_lines(utt), ""]
    return newline.join(lines)


@dataclass(frozen=True)
class BuiltTree:
    """A tree written by :func:`build_tree`: its root, its spec, and where each file went."""

    root: Path
    spec: tuple[Utt, ...]

    def session_dir(self, session: int) -> Path:
        return self.root / f"Session{session}"

    def emo_dir(self, session: int) -> Path:
        return self.session_dir(session) / "dialog" / "EmoEvaluation"

    def label_file(self, dialog: str) -> Path:
        (session,) = {u.session for u in self.spec if u.dialog == dialog}
        return self.emo_dir(session) / f"{dialog}.txt"

    def wav(self, utt: Utt) -> Path:
        return self.session_dir(utt.session) / "sentences" / "wav" / utt.dialog / f"{utt.utt_id}.wav"

    def dialogs(self) -> dict[str, list[Utt]]:
        out: dict[str, list[Utt]] = {}
        for utt in self.spec:
            out.setdefault(utt.dialog, []).append(utt)
        return out

    def kept(self, class_map: Mapping[str, str] = DEFAULT_CLASS_MAP) -> list[Utt]:
        return [u for u in self.spec if u.label in class_map]

    def counts(self, class_map: Mapping[str, str] = DEFAULT_CLASS_MAP) -> dict[str, Any]:
        """The counts a reader must report, in ``summarize``'s shape, from the spec's own fields."""
        kept = self.kept(class_map)
        genders = Counter(u.gender for u in kept)
        return {
            "total": len(kept),
            "by_emotion": dict(Counter(class_map[u.label] for u in kept)),
            "by_session": {str(s): n for s, n in sorted(Counter(u.session for u in kept).items())},
            "by_gender": {"F": genders["F"], "M": genders["M"]},
        }

    def line_no(self, utt: Utt) -> int:
        """1-based line of ``utt``'s consensus line in its label file, found by reading the file."""
        lines = self.label_file(utt.dialog).read_text().splitlines()
        (index,) = [i for i, line in enumerate(lines) if f"\t{utt.utt_id}\t" in line]
        return index + 1

    def replace_line(self, utt: Utt, new_line: str) -> int:
        """Overwrite ``utt``'s consensus line with ``new_line``; returns its 1-based line number."""
        return self.replace_at(utt.dialog, self.line_no(utt), new_line)

    def replace_at(self, dialog: str, line_no: int, new_line: str) -> int:
        path = self.label_file(dialog)
        lines = path.read_text().split("\n")
        lines[line_no - 1] = new_line
        path.write_text("\n".join(lines))
        return line_no


def build_tree(
    root: Path,
    spec: Sequence[Utt],
    *,
    newline: str = "\n",
    decoys: bool = True,
    marker: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> BuiltTree:
    """Write ``spec`` as an IEMOCAP tree under ``root``.

    Args:
        root: folder to write into (created if needed).
        spec: the utterances.
        newline: line ending of the label files (``"\\r\\n"`` for CRLF files).
        decoys: also write the sub-folder files and macOS ``._`` resource forks a reader must skip.
        marker: when given, write it as the generated corpus's ``GEMO_SYNTHETIC.json`` marker.
        seed: seed of the WAVs' noise.
    """
    tree = BuiltTree(Path(root), tuple(spec))
    rng = np.random.default_rng(seed)
    for dialog, utts in tree.dialogs().items():
        label_file = tree.label_file(dialog)
        label_file.parent.mkdir(parents=True, exist_ok=True)
        label_file.write_bytes(label_file_text(utts, newline).encode())
        if decoys:
            _write_decoys(label_file.parent, dialog, utts)
        for utt in utts:
            _write_wav(tree.wav(utt), utt.frames, rng)
    if marker is not None:
        (tree.root / MARKER).write_text(json.dumps(dict(marker)))
    return tree


def _write_decoys(emo_dir: Path, dialog: str, utts: Sequence[Utt]) -> None:
    # Files in other formats next to the labels; parsing any of them as labels is an error.
    categorical = emo_dir / "Categorical" / f"{dialog}_e2_cat.txt"
    attribute = emo_dir / "Attribute" / f"{dialog}_atr.txt"
    self_eval = emo_dir / "Self-evaluation" / f"{dialog}.txt"
    for path in (categorical, attribute, self_eval):
        path.parent.mkdir(exist_ok=True)
    categorical.write_text("".join(f"{u.utt_id} :{CATEGORY_WORDS[u.label]} state; ()\n" for u in utts))
    attribute.write_text("".join(f"{u.utt_id} :act 2; val 3; dom 2; ()\n" for u in utts))
    self_eval.write_text("".join(f"{u.utt_id} :val 3; act 2; dom 2; ()\n" for u in utts))
    (emo_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff\xfe\x00\x01")


def _write_wav(path: Path, frames: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = rng.uniform(-0.3, 0.3, frames).astype(np.float32)
    sf.write(path, noise, SAMPLE_RATE, subtype="PCM_16")


def count_by_mocap_letter(spec: Iterable[Utt], class_map: Mapping[str, str] = DEFAULT_CLASS_MAP) -> dict[str, int]:
    """Gender counts as the known wrong shortcut takes them: the letter after ``SesNN`` of the id."""
    letters = Counter(u.utt_id.split("_", 1)[0][-1] for u in spec if u.label in class_map)
    return {"F": letters["F"], "M": letters["M"]}
