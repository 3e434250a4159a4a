"""Generic CSV manifest reader, for any corpus without a reader of its own.

A UTF-8 CSV with a header row and the columns ``path, emotion, gender, speaker``, optionally ``fold``
(the test fold of each utterance, 1..k; all rows or none) and ``id`` (default: the path without its
suffix). Paths are relative to the manifest's folder unless absolute. Emotions may be the class codes or
words (``neu``/``neutral``, ``hap``/``happy``/``happiness``, ``ang``/``angry``/``anger``,
``sad``/``sadness``; any case); other labels are dropped unless a class map says otherwise. Genders are
``F``/``M`` or ``female``/``male``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from benchmark.data.corpus import CorpusFormatError, Entry, Listing, ListingReader
from benchmark.data.records import CLASS_ALIASES

REQUIRED = ("path", "emotion", "gender", "speaker")
GENDERS = {"f": "F", "female": "F", "m": "M", "male": "M"}
DEFAULT_NAME = "manifest.csv"
OPEN_LABELS: Mapping[str, str] = MappingProxyType({})


class ManifestReader(ListingReader):
    name = "manifest"
    title = "CSV manifest"
    labels = OPEN_LABELS  # open label set: whatever the manifest uses
    class_map = CLASS_ALIASES
    root_env = "GEMO_MANIFEST"
    has_sessions = False

    def list(self, root: Path) -> Listing:
        path = root / DEFAULT_NAME if root.is_dir() else root
        if not path.is_file():
            raise CorpusFormatError(f"{path}: manifest not found (a CSV file, or a folder holding {DEFAULT_NAME})")
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.DictReader(f)
            header = [c.strip() for c in rows.fieldnames or ()]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise CorpusFormatError(f"{path}:1: missing column(s) {missing} (header: {header})")
            rows.fieldnames = header
            entries = [_entry(path, rows.line_num, row) for row in rows]
        with_fold = sum(e.fold is not None for e in entries)
        if 0 < with_fold < len(entries):
            raise CorpusFormatError(f"{path}: the fold column is empty in some rows; give a fold for all or none")
        return Listing(entries)


def _entry(manifest: Path, line: int, row: dict[str, str]) -> Entry:
    where = f"{manifest}:{line}"
    values = {k: (v or "").strip() for k, v in row.items() if k is not None}
    for column in REQUIRED:
        if not values.get(column):
            raise CorpusFormatError(f"{where}: empty {column}")
    gender = GENDERS.get(values["gender"].lower())
    if gender is None:
        raise CorpusFormatError(f"{where}: gender must be F, M, female or male, got {values['gender']!r}")
    fold = None
    if values.get("fold"):
        try:
            fold = int(values["fold"])
        except ValueError:
            fold = 0
        if fold < 1:
            raise CorpusFormatError(f"{where}: fold must be a positive integer, got {values['fold']!r}")
    audio = Path(values["path"])
    audio = audio if audio.is_absolute() else manifest.parent / audio
    return Entry(
        id=values.get("id") or str(Path(values["path"]).with_suffix("")),
        path=audio,
        speaker=values["speaker"],
        gender=gender,
        label=values["emotion"].lower(),
        fold=fold,
    )
