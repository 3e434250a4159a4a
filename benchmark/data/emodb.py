"""EmoDB (Berlin Database of Emotional Speech) reader: ``wav/<speaker><text><emotion><version>.wav``.

``03a01Fa.wav``: speaker 03, text a01, emotion F (happiness), version a. Ten actors: 03, 10, 11, 12 and 15
are male; 08, 09, 13, 14 and 16 female (Burkhardt et al., 2005). Emotion letters are German initials.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.data.corpus import CorpusFormatError, Entry, Listing, ListingReader

FILE_RE = re.compile(r"(?P<speaker>\d{2})(?P<text>[ab]\d{2})(?P<emotion>[A-Z])(?P<version>[a-z])")
LABELS = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}
MALE = frozenset({"03", "10", "11", "12", "15"})
FEMALE = frozenset({"08", "09", "13", "14", "16"})

# native label -> class code (the 4 classes shared with IEMOCAP)
CLASS_MAP = {"N": "neu", "F": "hap", "W": "ang", "T": "sad"}


class EmodbReader(ListingReader):
    name = "emodb"
    title = "EmoDB"
    labels = LABELS
    class_map = CLASS_MAP
    root_env = "EMODB_ROOT"
    has_sessions = False

    def list(self, root: Path) -> Listing:
        folder = root / "wav"
        if not folder.is_dir():
            raise CorpusFormatError(f"{root}: not an EmoDB root: expected a wav/ folder")
        entries = []
        for path in sorted(folder.glob("*.wav")):
            if path.name.startswith("."):
                continue
            match = FILE_RE.fullmatch(path.stem)
            if match is None:
                raise CorpusFormatError(f"{path}: not an EmoDB file name (expected e.g. 03a01Fa.wav)")
            f = match.groupdict()
            if f["emotion"] not in LABELS:
                raise CorpusFormatError(f"{path}: unknown emotion letter {f['emotion']} (known: {''.join(LABELS)})")
            if f["speaker"] not in MALE | FEMALE:
                raise CorpusFormatError(f"{path}: unknown speaker {f['speaker']} (EmoDB has 03, 08-16)")
            entries.append(
                Entry(
                    id=path.stem,
                    path=path,
                    speaker=f["speaker"],
                    gender="M" if f["speaker"] in MALE else "F",
                    label=f["emotion"],
                    extra=(("text", f["text"]), ("version", f["version"])),
                )
            )
        return Listing(entries)
