"""CREMA-D reader: ``AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav`` plus ``VideoDemographics.csv``.

91 actors (``1001``-``1091``) read 12 sentences (``DFA``, ``IEO``, ...) with six emotions (ANG, DIS, FEA,
HAP, NEU, SAD) at a level of LO, MD, HI or XX (unspecified). The speaker's sex is not in the file name; it
comes from the ``Sex`` column (``Male``/``Female``) of ``VideoDemographics.csv`` at the root.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from benchmark.data.corpus import CorpusFormatError, Entry, Listing, ListingReader

FILE_RE = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})")
LABELS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
DEMOGRAPHICS = "VideoDemographics.csv"
SEX = {"male": "M", "female": "F"}

# native label -> class code (the 4 classes shared with IEMOCAP)
CLASS_MAP = {"NEU": "neu", "HAP": "hap", "ANG": "ang", "SAD": "sad"}


class CremadReader(ListingReader):
    name = "cremad"
    title = "CREMA-D"
    labels = LABELS
    class_map = CLASS_MAP
    root_env = "CREMAD_ROOT"
    has_sessions = False

    def list(self, root: Path) -> Listing:
        audio = root / "AudioWAV"
        if not audio.is_dir():
            raise CorpusFormatError(f"{root}: not a CREMA-D root: expected AudioWAV/ and {DEMOGRAPHICS}")
        sex = read_demographics(root / DEMOGRAPHICS)
        entries = []
        for path in sorted(audio.glob("*.wav")):
            if path.name.startswith("."):
                continue
            match = FILE_RE.fullmatch(path.stem)
            if match is None:
                raise CorpusFormatError(f"{path}: not a CREMA-D file name (expected 1001_DFA_ANG_XX.wav)")
            f = match.groupdict()
            if f["emotion"] not in LABELS or f["level"] not in LEVELS:
                raise CorpusFormatError(
                    f"{path}: unknown emotion {f['emotion']} or level {f['level']} "
                    f"(emotions {', '.join(LABELS)}; levels {', '.join(LEVELS)})"
                )
            if f["actor"] not in sex:
                raise CorpusFormatError(f"{path}: actor {f['actor']} is not in {root / DEMOGRAPHICS}")
            entries.append(
                Entry(
                    id=path.stem,
                    path=path,
                    speaker=f["actor"],
                    gender=sex[f["actor"]],
                    label=f["emotion"],
                    extra=(("sentence", f["sentence"]), ("level", LEVELS[f["level"]])),
                )
            )
        return Listing(entries)


def read_demographics(path: Path) -> dict[str, str]:
    """``{actor id: "F" | "M"}`` from ``VideoDemographics.csv``; errors name the file and line."""
    if not path.is_file():
        raise CorpusFormatError(f"{path}: not found (CREMA-D's speaker sex comes from it)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.DictReader(f)
        missing = {"ActorID", "Sex"} - set(rows.fieldnames or ())
        if missing:
            raise CorpusFormatError(f"{path}:1: missing column(s) {sorted(missing)} (header: {rows.fieldnames})")
        out = {}
        for row in rows:
            actor, sex = (row["ActorID"] or "").strip(), (row["Sex"] or "").strip().lower()
            if sex not in SEX:
                raise CorpusFormatError(f"{path}:{rows.line_num}: Sex must be Male or Female, got {row['Sex']!r}")
            out[actor] = SEX[sex]
    return out
