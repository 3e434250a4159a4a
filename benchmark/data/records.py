"""The record every corpus reader produces, and the shared 4-class label set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 16_000

# The 4-class IEMOCAP task: codes as IEMOCAP writes them (excitement is merged into happy).
CLASSES: tuple[str, ...] = ("neu", "hap", "ang", "sad")
# Words that stand for each class in text prompts ("The emotion is {label}.").
CLASS_WORDS: Mapping[str, str] = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad"}
GENDERS: tuple[str, ...] = ("F", "M")
GENDER_WORDS: Mapping[str, str] = {"F": "female", "M": "male"}

# Raw IEMOCAP label -> class code. Labels absent from the map (fru, sur, fea, dis, oth, xxx) are dropped.
DEFAULT_CLASS_MAP: Mapping[str, str] = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance of a corpus.

    Attributes:
        id: the corpus's utterance id (``Ses01F_impro01_M000``).
        path: the WAV file.
        session: recording session (1..5 for IEMOCAP).
        dialog: dialog the utterance belongs to (``Ses01F_impro01``).
        speaker: speaker id (``Ses01M``: session and the speaker's gender).
        gender: ``"F"`` or ``"M"``, the gender of the speaker of this utterance.
        emotion: class code after the class map (``"hap"`` for a raw ``exc``).
        duration: seconds of audio.
        raw_label: the label as the annotation file writes it.
    """

    id: str
    path: Path
    session: int
    dialog: str
    speaker: str
    gender: str
    emotion: str
    duration: float
    raw_label: str
