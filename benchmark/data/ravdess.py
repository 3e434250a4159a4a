"""RAVDESS reader: ``Actor_NN/MM-VV-EE-II-SS-RR-NN.wav`` (Livingstone & Russo, 2018).

The seven two-digit fields of a file name are modality (01 full-AV, 02 video-only, 03 audio-only), vocal
channel (01 speech, 02 song), emotion, intensity (01 normal, 02 strong), statement (01 "Kids are talking by
the door", 02 "Dogs are sitting by the door"), repetition (01, 02) and actor (01-24; odd actors are male,
even actors female). Only audio-only speech files are read; song files, if merged into the same folders,
are skipped and counted. The originals are 48 kHz (resampled on load) and the release holds a stereo file
(downmixed on load); both are counted in the reading's notes.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from benchmark.data.corpus import CorpusFormatError, Entry, Listing, ListingReader

FILE_RE = re.compile(
    r"(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})"
    r"-(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})"
)
ACTOR_DIR_RE = re.compile(r"Actor_(?P<actor>\d{2})")

LABELS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}

# native label -> class code (the 4 classes shared with IEMOCAP)
CLASS_MAP = {"01": "neu", "03": "hap", "04": "sad", "05": "ang"}


class RavdessReader(ListingReader):
    name = "ravdess"
    title = "RAVDESS"
    labels = LABELS
    class_map = CLASS_MAP
    root_env = "RAVDESS_ROOT"
    has_sessions = False

    def list(self, root: Path) -> Listing:
        actor_dirs = sorted(p for p in root.iterdir() if p.is_dir() and ACTOR_DIR_RE.fullmatch(p.name))
        if not actor_dirs:
            raise CorpusFormatError(f"{root}: not a RAVDESS root: expected Actor_01/ ... Actor_24/ folders")
        entries, skipped = [], Counter()
        for folder in actor_dirs:
            for path in sorted(folder.glob("*.wav")):
                if path.name.startswith("."):
                    continue  # macOS resource forks
                entry = _entry(path, folder)
                if entry is None:
                    continue
                if isinstance(entry, str):
                    skipped[entry] += 1
                else:
                    entries.append(entry)
        return Listing(entries, skipped)


def _entry(path: Path, folder: Path) -> Entry | str | None:
    match = FILE_RE.fullmatch(path.stem)
    if match is None:
        raise CorpusFormatError(f"{path}: not a RAVDESS file name (expected MM-VV-EE-II-SS-RR-NN.wav)")
    f = match.groupdict()
    if f["actor"] != ACTOR_DIR_RE.fullmatch(folder.name)["actor"]:
        raise CorpusFormatError(f"{path}: actor {f['actor']} in the name, but the file lies in {folder.name}/")
    for name, allowed in (("emotion", LABELS), ("intensity", INTENSITY), ("statement", STATEMENTS)):
        if f[name] not in allowed:
            raise CorpusFormatError(f"{path}: unknown {name} code {f[name]} (known: {', '.join(allowed)})")
    if f["modality"] != "03":
        return "not audio-only (modality {})".format(f["modality"])
    if f["channel"] != "01":
        return "song (vocal channel 02)"
    actor = int(f["actor"])
    return Entry(
        id=path.stem,
        path=path,
        speaker=folder.name,
        gender="M" if actor % 2 else "F",
        label=f["emotion"],
        extra=(
            ("intensity", INTENSITY[f["intensity"]]),
            ("statement", f["statement"]),
            ("repetition", f["repetition"]),
        ),
    )
