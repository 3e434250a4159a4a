"""The corpus interface: a reader turns a root directory into utterance records, and says what it dropped.

Every corpus (IEMOCAP, the embedded corpus, RAVDESS, CREMA-D, EmoDB, a CSV manifest) has a reader that
declares its native label set and the mapping of those labels onto the shared 4 classes, and lists the
corpus's labelled audio files as :class:`Entry` objects. :func:`read_corpus` turns entries into
:class:`~benchmark.data.records.Utterance` records the same way for every corpus:

1. labels outside the class map are dropped (or kept under their native name on request);
2. every kept file's header is read: unreadable files are an error listing all of them (the default) or
   are dropped and listed, with the reason;
3. identical files (same size and content hash) are reported and only the first (by path) is kept;
4. conversions loading will apply (resampling, downmixing) are counted and noted.

The result, a :class:`CorpusReading`, carries the records plus what was dropped and why, so summaries and
reports can say it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmark.data.audio import AudioConversionWarning, AudioError, AudioInfo, audio_info
from benchmark.data.records import CLASSES, GENDERS, SAMPLE_RATE, Utterance

UNREADABLE_POLICIES: tuple[str, ...] = ("error", "drop")

# reasons, as the summary's "dropped" object spells them
DUPLICATE = "duplicate audio"
UNREADABLE = "unreadable audio"

_SHOWN = 20


class CorpusFormatError(ValueError):
    """A file of a corpus that breaks the corpus's conventions; the message names the file (and line)."""


@dataclass(frozen=True)
class Entry:
    """One labelled audio file as a reader finds it, before labels are mapped and audio is checked.

    Attributes:
        id: utterance id, unique within the corpus.
        path: the audio file.
        speaker: speaker id.
        gender: ``"F"`` or ``"M"``.
        label: the corpus's native label code (``05``, ``ANG``, ``W``, ``exc``).
        session, dialog: IEMOCAP-style grouping, when the corpus has it.
        fold: a fold given by the corpus itself (a manifest's ``fold`` column).
        extra: corpus-specific fields as ``(name, value)`` pairs.
    """

    id: str
    path: Path
    speaker: str
    gender: str
    label: str
    session: int | None = None
    dialog: str = ""
    fold: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Listing:
    """What a reader found under a root: labelled entries, and files it skipped on purpose (with the reason)."""

    entries: list[Entry]
    skipped: Counter = field(default_factory=Counter)


class CorpusReader(Protocol):
    """What every corpus reader provides.

    Attributes:
        name: the corpus's name in study files and on the command line (``ravdess``).
        title: its display name.
        labels: native label code -> what it means (``{"05": "angry", ...}``).
        class_map: native label code -> shared class code, the default mapping onto the 4 classes.
        root_env: environment variable naming the root when none is given (``RAVDESS_ROOT``).
        has_sessions: folds are its sessions (IEMOCAP's leave-one-session-out) rather than speaker k-fold.
    """

    name: str
    title: str
    labels: Mapping[str, str]
    class_map: Mapping[str, str]
    root_env: str
    has_sessions: bool

    def read(
        self,
        root: Path,
        *,
        class_map: Mapping[str, str] | None = None,
        keep_other: bool = False,
        unreadable: str = "error",
    ) -> CorpusReading:
        """Read the corpus under ``root`` (see :func:`read_corpus` for the arguments)."""
        ...


class ListingReader:
    """A reader that lists its files (``list``) and leaves the rest to :func:`read_corpus`."""

    def list(self, root: Path) -> Listing:
        """Every labelled audio file under ``root``; raises :class:`CorpusFormatError` naming a bad file."""
        raise NotImplementedError

    def read(
        self,
        root: Path,
        *,
        class_map: Mapping[str, str] | None = None,
        keep_other: bool = False,
        unreadable: str = "error",
    ) -> CorpusReading:
        return read_corpus(self, root, class_map=class_map, keep_other=keep_other, unreadable=unreadable)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CorpusReading:
    """Records of a corpus plus everything that did not make it, and why.

    Attributes:
        corpus: the reader's name.
        root: the directory read.
        records: the kept utterances, sorted by (session, dialog, id) (sessions first for IEMOCAP).
        dropped: reason -> number of files (``"label 07 (disgust)"``, ``"duplicate audio"``, ...).
        unreadable: ``(path, reason)`` of each unreadable file that was dropped.
        duplicates: ``(dropped path, kept path)`` of each identical pair.
        notes: conversions that loading applies (``"3 files resampled 48000 Hz -> 16000 Hz"``).
    """

    corpus: str
    root: Path
    records: tuple[Utterance, ...]
    dropped: Mapping[str, int]
    unreadable: tuple[tuple[Path, str], ...] = ()
    duplicates: tuple[tuple[Path, Path], ...] = ()
    notes: tuple[str, ...] = ()


def check_class_map(reader: CorpusReader, class_map: Mapping[str, str]) -> None:
    """A class map must use the reader's native labels as keys and shared classes as values."""
    unknown = sorted(set(class_map) - set(reader.labels))
    if reader.labels and unknown:  # an empty label set is open (a manifest's labels are whatever it uses)
        raise ValueError(
            f"{reader.name}: class map keys {unknown} are not {reader.title} labels "
            f"(known: {', '.join(f'{k} {v}' for k, v in reader.labels.items())})"
        )
    bad = sorted({v for v in class_map.values() if v not in CLASSES})
    if bad:
        raise ValueError(f"{reader.name}: class map values {bad} are not classes (choose from {', '.join(CLASSES)})")


def label_reason(reader: CorpusReader, label: str) -> str:
    """The dropped-reason of a label outside the class map: ``label 07 (disgust)``."""
    meaning = reader.labels.get(label, "")
    return f"label {label} ({meaning})" if meaning and meaning != label else f"label {label}"


def read_corpus(
    reader: Any,
    root: Path,
    *,
    class_map: Mapping[str, str] | None = None,
    keep_other: bool = False,
    unreadable: str = "error",
) -> CorpusReading:
    """Read a corpus through its reader (see the module docstring for the steps).

    Args:
        reader: the corpus's reader, with a ``list(root)`` method returning a :class:`Listing`.
        root: its root directory (already resolved).
        class_map: native label -> class code; None uses the reader's default.
        keep_other: keep utterances whose label is outside the class map, with ``emotion`` set to the
            native label's meaning (for summaries; training needs the 4 classes).
        unreadable: ``error`` (one AudioError listing every unreadable file) or ``drop`` (list and drop them).

    Raises:
        CorpusFormatError: a file name or table row that breaks the corpus's conventions.
        AudioError: unreadable files with ``unreadable="error"``; files cut short are always unreadable.
    """
    if unreadable not in UNREADABLE_POLICIES:
        raise ValueError(f"unreadable must be one of {', '.join(UNREADABLE_POLICIES)}, got {unreadable!r}")
    class_map = dict(reader.class_map if class_map is None else class_map)
    check_class_map(reader, class_map)
    listing = reader.list(root)
    _check_unique_ids(listing.entries)
    dropped: Counter = Counter(listing.skipped)
    kept: list[tuple[Entry, str]] = []
    for entry in listing.entries:
        if entry.label in class_map:
            kept.append((entry, class_map[entry.label]))
        elif keep_other:
            kept.append((entry, reader.labels.get(entry.label, entry.label)))
        else:
            dropped[label_reason(reader, entry.label)] += 1

    infos, bad = _headers(entry.path for entry, _ in kept)
    if bad and unreadable == "error":
        raise AudioError(_unreadable_message(bad))
    dropped[UNREADABLE] += len(bad)
    readable = [(entry, emotion) for (entry, emotion) in kept if entry.path in infos]

    duplicates = find_duplicates([entry.path for entry, _ in readable])
    dropped[DUPLICATE] += len(duplicates)
    gone = {dup for dup, _ in duplicates}
    records = [_record(reader.name, entry, emotion, infos[entry.path]) for entry, emotion in readable]
    records = [r for r in records if r.path not in gone]
    records.sort(key=lambda r: (r.session or 0, r.dialog, r.id))
    notes = conversion_notes([infos[r.path] for r in records])
    return CorpusReading(
        corpus=reader.name,
        root=root,
        records=tuple(records),
        dropped={reason: n for reason, n in sorted(dropped.items()) if n},
        unreadable=tuple(bad),
        duplicates=tuple(duplicates),
        notes=notes,
    )


def _check_unique_ids(entries: Sequence[Entry]) -> None:
    seen: dict[str, Path] = {}
    for entry in entries:
        if entry.id in seen:
            raise CorpusFormatError(f"{entry.path}: utterance id {entry.id} is also the id of {seen[entry.id]}")
        seen[entry.id] = entry.path


def _headers(paths: Iterable[Path]) -> tuple[dict[Path, AudioInfo], list[tuple[Path, str]]]:
    """Headers of readable files, and ``(path, reason)`` for each unreadable or truncated one."""
    infos, bad = {}, []
    for path in paths:
        try:
            info = audio_info(path)
        except AudioError as exc:
            bad.append((path, str(exc).removeprefix(f"{path}: ")))
            continue
        if info.truncated:
            bad.append((path, f"cut short: {info.frames} of {info.declared_frames} frames"))
            continue
        infos[path] = info
    return infos, bad


def _unreadable_message(bad: Sequence[tuple[Path, str]]) -> str:
    shown = "".join(f"\n  {path}: {reason}" for path, reason in bad[:_SHOWN])
    more = f"\n  ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return (
        f"{len(bad)} audio file(s) cannot be used:{shown}{more}\n"
        '(set data.unreadable = "drop" in the study, or pass --drop-unreadable, to leave them out)'
    )


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


def find_duplicates(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """``(duplicate, kept)`` for files with identical content; the first path in sorted order is kept.

    Only files of equal size are hashed, so a corpus without duplicates costs one ``stat`` per file.
    """
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in paths:
        by_size[path.stat().st_size].append(path)
    out = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_hash: dict[str, list[Path]] = defaultdict(list)
        for path in sorted(same_size):
            by_hash[file_digest(path)].append(path)
        for group in by_hash.values():
            out += [(dup, group[0]) for dup in group[1:]]
    return sorted(out)


def conversion_notes(infos: Sequence[AudioInfo]) -> tuple[str, ...]:
    """``"N files resampled R Hz -> 16000 Hz"`` / ``"N files downmixed C channels -> mono"``."""
    notes = Counter(note for info in infos for note in info.notes)
    return tuple(f"{n} file(s) {note}" for note, n in sorted(notes.items()))


def warn_conversions(reading: CorpusReading) -> None:
    """One warning for every conversion loading will apply (files are converted on each load)."""
    if reading.notes:
        warnings.warn(
            f"{reading.root}: " + "; ".join(reading.notes) + f" (loaded as {SAMPLE_RATE} Hz mono each time)",
            AudioConversionWarning,
            stacklevel=3,
        )


def _record(corpus: str, entry: Entry, emotion: str, info: AudioInfo) -> Utterance:
    return Utterance(
        id=entry.id,
        path=entry.path,
        session=entry.session,
        dialog=entry.dialog,
        speaker=entry.speaker,
        gender=entry.gender,
        emotion=emotion,
        duration=info.duration,
        raw_label=entry.label,
        corpus=corpus,
        fold=entry.fold,
        extra=entry.extra,
    )


def summarize_reading(reading: CorpusReading, *, sessions: bool = False) -> dict[str, Any]:
    """The summary every corpus shares (other tools read it).

    Returns:
        ``{"total", "by_emotion", "by_gender", "by_speaker", "dropped": {reason: n}}`` over the kept records,
        plus ``"by_session"`` (after ``by_emotion``) when ``sessions`` is true. Emotions follow the class
        order, genders F then M, speakers and reasons sorted.
    """
    records = reading.records
    emotions = Counter(r.emotion for r in records)
    genders = Counter(r.gender for r in records)
    speakers = Counter(r.speaker for r in records)
    out: dict[str, Any] = {
        "total": len(records),
        "by_emotion": {
            c: emotions[c] for c in [*(c for c in CLASSES if c in emotions), *sorted(set(emotions) - set(CLASSES))]
        },
    }
    if sessions:
        counts = Counter(r.session for r in records)
        out["by_session"] = {str(s): counts[s] for s in sorted(s for s in counts if s is not None)}
    out["by_gender"] = {g: genders[g] for g in [*GENDERS, *sorted(set(genders) - set(GENDERS))]}
    out["by_speaker"] = {s: speakers[s] for s in sorted(speakers)}
    out["dropped"] = dict(reading.dropped)
    return out
