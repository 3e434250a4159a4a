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
# Columns of a run's predictions.csv, one row per test utterance. ``agreement`` is ``k/n`` (k of the n
# evaluators who rated it named its class, :attr:`Utterance.agreement`), empty where the corpus has no votes;
# runs logged before it was added have the first five columns only.
PREDICTION_COLUMNS: tuple[str, ...] = ("id", "speaker", "gender", "emotion", "predicted", "agreement")
GENDER_WORDS: Mapping[str, str] = {"F": "female", "M": "male"}

# Class words and the synonyms corpora and manifests use for them -> class code.
CLASS_ALIASES: Mapping[str, str] = {
    **{code: code for code in CLASSES},
    **{word: code for code, word in CLASS_WORDS.items()},
    "happiness": "hap",
    "anger": "ang",
    "sadness": "sad",
}

# Raw IEMOCAP label -> class code. Labels absent from the map (fru, sur, fea, dis, oth, xxx) are dropped.
DEFAULT_CLASS_MAP: Mapping[str, str] = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance of a corpus.

    Attributes:
        id: the corpus's utterance id (``Ses01F_impro01_M000``, ``03-01-05-01-02-01-12``).
        path: the audio file.
        session: recording session (1..5 for IEMOCAP); None for corpora without sessions.
        dialog: dialog the utterance belongs to (``Ses01F_impro01``); empty for corpora without dialogs.
        speaker: speaker id (``Ses01M`` on IEMOCAP: session and the speaker's gender; ``Actor_12``, ``1001``).
        gender: ``"F"`` or ``"M"``, the gender of the speaker of this utterance.
        emotion: class code after the class map (``"hap"`` for a raw ``exc``), or the native label when
            other labels are kept on request.
        duration: seconds of audio.
        raw_label: the label as the corpus writes it (``exc``, ``05``, ``ANG``, ``W``).
        corpus: the reader that produced the record (``iemocap``, ``ravdess``, ...).
        fold: the cross-validation fold the utterance is tested in; None means its session (IEMOCAP's
            leave-one-session-out). Set by the manifest or by speaker-independent k-fold assignment.
        extra: corpus-specific fields as ``(name, value)`` pairs (RAVDESS intensity, CREMA-D sentence, IEMOCAP's
            label agreement ``evaluators`` / ``agreeing``, ...).
    """

    id: str
    path: Path
    session: int | None
    dialog: str
    speaker: str
    gender: str
    emotion: str
    duration: float
    raw_label: str
    corpus: str = "iemocap"
    fold: int | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def agreement(self) -> tuple[int, int] | None:
        """(agreeing, evaluators): how many of the evaluators who rated it named its class; None if unknown."""
        fields = dict(self.extra)
        if "evaluators" not in fields:
            return None
        return int(fields["agreeing"]), int(fields["evaluators"])

    @property
    def agreement_text(self) -> str:
        """:attr:`agreement` as predictions.csv writes it: ``2/3``, or ``""`` when unknown."""
        a = self.agreement
        return "" if a is None else f"{a[0]}/{a[1]}"

    @property
    def test_fold(self) -> int | None:
        """The fold that tests this utterance: its assigned fold, else its session."""
        return self.fold if self.fold is not None else self.session
