"""IEMOCAP reader: the consensus labels of ``EmoEvaluation/<dialog>.txt`` joined to their WAV files.

A release is laid out as::

    IEMOCAP_full_release/
      Session1/
        dialog/EmoEvaluation/Ses01F_impro01.txt     consensus labels and evaluators' votes (the only files read)
        dialog/EmoEvaluation/Categorical/...        single annotators' votes, other formats: ignored
        sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
      Session2/ ...

Everything is parsed with named regexes, and every problem is reported with the file (and line) it
comes from, so that a broken download fails loudly instead of silently shifting the class counts.

Label agreement: each record's ``extra`` holds ``evaluators`` (how many ``C-E<n>`` categorical evaluators
rated it; the speaker's own ``C-F1``/``C-M1`` rating is not an evaluator's) and ``agreeing`` (how many of them
named a category that the class map maps to the record's class: ``Excited`` agrees with a ``hap`` consensus
under the 4-class map). See :meth:`benchmark.data.records.Utterance.agreement`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data.audio import AudioConversionWarning, AudioError, AudioInfo, audio_info
from benchmark.data.corpus import (
    DUPLICATE,
    CorpusReading,
    Entry,
    Listing,
    check_class_map,
    find_duplicates,
    label_reason,
    read_corpus,
)
from benchmark.data.records import CLASSES, DEFAULT_CLASS_MAP, GENDERS, SAMPLE_RATE, Utterance

SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
ROOT_ENV = "IEMOCAP_ROOT"
# The suite's generated corpus carries this file at its root; its counts are not the release's.
SYNTHETIC_MARKER = "GEMO_SYNTHETIC.json"

# Every label the consensus lines of the release use; anything else means a corrupt or foreign file.
RAW_LABELS: frozenset[str] = frozenset({"neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx"})

# What each raw label means (the release's own words).
LABEL_WORDS: Mapping[str, str] = {
    "neu": "neutral",
    "hap": "happiness",
    "exc": "excitement",
    "ang": "anger",
    "sad": "sadness",
    "fru": "frustration",
    "sur": "surprise",
    "fea": "fear",
    "dis": "disgust",
    "oth": "other",
    "xxx": "no agreement",
}

# The 4-class counts of the full release (DEFAULT_CLASS_MAP), as the literature reports them.
EXPECTED_COUNTS: Mapping[str, Any] = {
    "total": 5531,
    "by_emotion": {"neu": 1708, "hap": 1636, "ang": 1103, "sad": 1084},
    "by_session": {"1": 1085, "2": 1023, "3": 1151, "4": 1031, "5": 1241},
    "by_gender": {"F": 2649, "M": 2882},
}

# How many missing WAVs a MissingAudioError spells out before summarising the rest.
_MISSING_SHOWN = 20
# How many converted WAVs of each kind an AudioConversionWarning names.
_CONVERTED_SHOWN = 3

_NUMBER = r"\d+(?:\.\d+)?"

# `Ses01F_impro01_M000`: the dialog is everything before the LAST underscore, and the letter after it is
# the speaker's gender. The letter after `Ses01` only says who wore the mocap markers in that dialog.
UTTERANCE_RE = re.compile(
    r"(?P<dialog>Ses(?P<session>\d{2})(?P<mocap>[FM])_[A-Za-z0-9_]+)_(?P<gender>[FM])(?P<turn>\d{3})"
)

# `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`
CONSENSUS_RE = re.compile(
    rf"\[\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})\s*\]"
    r"\t(?P<utt_id>\S+)"
    r"\t(?P<label>\S+)"
    rf"\t\[\s*(?P<val>{_NUMBER}),\s*(?P<act>{_NUMBER}),\s*(?P<dom>{_NUMBER})\s*\]"
)

# `C-E2:<TAB>Neutral;<TAB>()` or `A-E3:<TAB>val 3; act 2; dom  2;<TAB>()`: one annotator's vote. Trailing
# whitespace is stripped before matching, so a vote with nothing after the name is `C-E2:` alone.
ANNOTATOR_RE = re.compile(r"(?P<name>\S+):(?:\t(?P<vote>.*))?")
# A categorical evaluator (C-E1..C-E6); C-F1 / C-M1 are the speaker's self-evaluation.
EVALUATOR_RE = re.compile(r"C-E\d+")
# The category words of the evaluators' lines, as raw labels. A word not listed here agrees with nothing.
VOTE_LABELS: Mapping[str, str] = {
    "Neutral": "neu",
    "Neutral state": "neu",
    "Happiness": "hap",
    "Excited": "exc",
    "Anger": "ang",
    "Sadness": "sad",
    "Frustration": "fru",
    "Surprise": "sur",
    "Fear": "fea",
    "Disgust": "dis",
    "Other": "oth",
}

HEADER_PREFIX = "%"


class IemocapFormatError(ValueError):
    """A label file that does not follow the EmoEvaluation format.

    The message reads ``"<path>:<line>: <what is wrong>: <the line, repr>"``.
    """

    def __init__(self, path: str | Path, line_no: int | None, what: str, line: str | None = None) -> None:
        self.path = Path(path)
        self.line_no = line_no
        self.what = what
        self.line = line
        where = f"{self.path}:{line_no}" if line_no is not None else str(self.path)
        message = f"{where}: {what}" if line is None else f"{where}: {what}: {line!r}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the error picklable (process pools) although __init__ takes more than the message.
        return (type(self), (self.path, self.line_no, self.what, self.line))


class MissingAudioError(FileNotFoundError):
    """Labelled utterances whose WAV files are absent; raised once, listing all of them."""

    def __init__(self, missing: Iterable[str | Path]) -> None:
        self.missing: tuple[Path, ...] = tuple(Path(p) for p in missing)
        super().__init__(_missing_message(self.missing))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.missing,))


class NotIemocapRootError(ValueError):
    """The given root is not (or no longer) an IEMOCAP tree."""


class IemocapCountWarning(UserWarning):
    """A tree that looks like the full release does not hold the release's 4-class counts."""


@dataclass(frozen=True)
class LabelLine:
    """One consensus line of an EmoEvaluation file.

    Attributes:
        utt_id: utterance id (``Ses01F_impro01_F000``).
        start: start of the turn in the dialog, in seconds.
        end: end of the turn in the dialog, in seconds.
        label: raw consensus label (one of :data:`RAW_LABELS`).
        vad: valence, activation, dominance, in the file's order.
        line_no: 1-based line number in the file.
        votes: each categorical evaluator's categories as raw labels (``?`` for a word not in
            :data:`VOTE_LABELS`), in the block's order; the speaker's self-evaluation is not among them.
    """

    utt_id: str
    start: float
    end: float
    label: str
    vad: tuple[float, float, float]
    line_no: int
    votes: tuple[tuple[str, ...], ...] = ()


# --------------------------------------------------------------------------- one EmoEvaluation file


def parse_emo_evaluation(path: str | Path) -> list[LabelLine]:
    """Parse one ``EmoEvaluation/<dialog>.txt`` file into its consensus lines.

    Annotator lines (``C-E2:<TAB>...``) are checked for shape; the categorical evaluators' are kept as votes.

    Args:
        path: the label file.

    Returns:
        The consensus lines in file order.

    Raises:
        IemocapFormatError: empty file, missing header, malformed block line, unknown label or bad utterance
            id; the message names the file and the 1-based line.
    """
    path = Path(path)
    lines = _read_lines(path)
    _check_header(path, lines)
    return [
        dataclasses.replace(_parse_consensus(path, line_no, line), votes=votes)
        for line_no, line, votes in _blocks(path, lines[1:], first=2)
    ]


def _read_lines(path: Path) -> list[str]:
    """The file's lines without line endings or trailing whitespace."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # drops a byte-order mark
    except UnicodeDecodeError as exc:
        line_no = exc.object[: exc.start].count(b"\n") + 1
        byte = exc.object[exc.start]
        raise IemocapFormatError(path, line_no, f"not a UTF-8 text file (byte {byte:#04x} cannot be decoded)") from exc
    # universal newlines, as read_text would: CRLF and lone CR end lines too
    return [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def _check_header(path: Path, lines: list[str]) -> None:
    if not any(lines):
        raise IemocapFormatError(path, None, "empty file, expected an EmoEvaluation label file")
    if not lines[0].startswith(HEADER_PREFIX):
        raise IemocapFormatError(path, 1, f"expected a header line starting with {HEADER_PREFIX!r}", lines[0])


def _blocks(path: Path, lines: list[str], first: int) -> list[tuple[int, str, tuple[tuple[str, ...], ...]]]:
    """``(line_no, line, votes)`` of each block's consensus line, checking the annotator lines after it."""
    out: list[tuple[int, str, list[tuple[str, ...]]]] = []
    in_block = False
    for line_no, line in enumerate(lines, start=first):
        if not line:
            in_block = False
        elif CONSENSUS_RE.fullmatch(line):
            in_block = True
            out.append((line_no, line, []))
        elif not in_block:
            raise IemocapFormatError(path, line_no, "expected a consensus line '[START - END]<TAB>ID<TAB>...'", line)
        elif not (match := ANNOTATOR_RE.fullmatch(line)):
            raise IemocapFormatError(path, line_no, "expected an annotator line 'NAME:<TAB>...'", line)
        elif EVALUATOR_RE.fullmatch(match["name"]):
            out[-1][2].append(_vote(match["vote"] or ""))
    return [(line_no, line, tuple(votes)) for line_no, line, votes in out]


def _vote(text: str) -> tuple[str, ...]:
    """``Frustration; Anger;<TAB>(comment)`` -> ``("fru", "ang")``; a word with a note (``Other:x``) by its word."""
    categories = text.split("\t", 1)[0]
    words = [item.split(":", 1)[0].strip() for item in categories.split(";")]
    return tuple(VOTE_LABELS.get(w, "?") for w in words if w)


def agreement_extra(votes: Sequence[Sequence[str]], label: str, class_map: Mapping[str, str]) -> tuple:
    """``(("evaluators", n), ("agreeing", k))`` for a record's ``extra``; ``()`` without evaluators' votes.

    An evaluator agrees when one of their categories maps to the consensus label's class.
    """
    if not votes:
        return ()
    own = class_map[label]
    agreeing = sum(any(class_map.get(raw) == own for raw in vote) for vote in votes)
    return (("evaluators", str(len(votes))), ("agreeing", str(agreeing)))


def _encode_votes(votes: Sequence[Sequence[str]]) -> str:
    """Votes as one ``extra`` value of a listing entry: ``hap+exc|hap|ang``."""
    return "|".join("+".join(vote) for vote in votes)


def _decode_votes(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(v for v in vote.split("+") if v) for vote in text.split("|")) if text else ()


def _parse_consensus(path: Path, line_no: int, line: str) -> LabelLine:
    match = CONSENSUS_RE.fullmatch(line)
    assert match is not None  # _blocks only yields matching lines
    if not UTTERANCE_RE.fullmatch(match["utt_id"]):
        raise IemocapFormatError(path, line_no, f"bad utterance id {match['utt_id']!r}", line)
    if match["label"] not in RAW_LABELS:
        raise IemocapFormatError(path, line_no, f"unknown label {match['label']!r}", line)
    return LabelLine(
        utt_id=match["utt_id"],
        start=float(match["start"]),
        end=float(match["end"]),
        label=match["label"],
        vad=(float(match["val"]), float(match["act"]), float(match["dom"])),
        line_no=line_no,
    )


# --------------------------------------------------------------------------- the tree


def resolve_root(root: str | Path | None) -> Path:
    """The IEMOCAP root to read: ``root``, or the ``IEMOCAP_ROOT`` environment variable when it is None.

    Raises:
        NotIemocapRootError: neither is given, or the folder holds no ``SessionN/dialog/EmoEvaluation/``.
    """
    if root is None:
        root = os.environ.get(ROOT_ENV) or None
    if root is None:
        raise NotIemocapRootError(f"no IEMOCAP root given: pass --iemocap ROOT or set {ROOT_ENV}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise NotIemocapRootError(
            f"{path}: not a directory (expected an IEMOCAP root with SessionN/dialog/EmoEvaluation/)"
        )
    if not any(_emo_dir(path / f"Session{n}").is_dir() for n in SESSIONS):
        raise NotIemocapRootError(
            f"{path}: not an IEMOCAP root: expected at least one SessionN/dialog/EmoEvaluation/ (N in 1..5)"
        )
    return path


def read_iemocap(
    root: str | Path | None = None,
    class_map: Mapping[str, str] = DEFAULT_CLASS_MAP,
    *,
    sessions: Collection[int] | None = None,
) -> list[Utterance]:
    """Read the labelled utterances of an IEMOCAP tree.

    Args:
        root: the release folder (``IEMOCAP_full_release``); None reads ``IEMOCAP_ROOT``.
        class_map: raw label -> class code; utterances whose label is not a key are dropped.
        sessions: read only these sessions (1..5); None reads every session present.

    Returns:
        One record per kept utterance, sorted by (session, dialog, id).

    Raises:
        NotIemocapRootError: ``root`` is not an IEMOCAP tree, or lacks a requested session.
        IemocapFormatError: a malformed label file, an id whose session is not its folder's, or an id
            labelled twice.
        MissingAudioError: the WAV files of kept utterances that do not exist, all of them at once.
        AudioError: a WAV that exists but cannot be read or holds no samples; WAVs cut short (listed at once).

    Warns:
        IemocapCountWarning: the tree looks like the full release but its counts are not the release's.
        AudioConversionWarning: some WAVs are not 16 kHz or not mono (they are resampled or downmixed on
            load); one warning counts them and names the first few.
    """
    root = resolve_root(root)
    _check_class_map(class_map)
    session_dirs = _session_dirs(root, sessions)
    labelled = _labelled_utterances(session_dirs)
    kept = [(session, line) for session, line in labelled if line.label in class_map]
    wavs = [_wav_path(session_dirs[session], line.utt_id) for session, line in kept]
    # Every missing file is reported at once, before any audio is opened: a partial download shows
    # its full extent in one run.
    _check_audio_exists(wavs)
    infos = [audio_info(wav) for wav in wavs]
    _check_audio_complete(infos)
    records = sorted(
        (_record(session, line, info, class_map) for (session, line), info in zip(kept, infos, strict=True)),
        key=lambda r: (r.session, r.dialog, r.id),
    )
    _warn_on_conversions(root, infos)
    if _looks_like_full_release(root, class_map, session_dirs, sessions):
        _warn_on_count_mismatch(root, summarize(records))
    return records


def _emo_dir(session_dir: Path) -> Path:
    return session_dir / "dialog" / "EmoEvaluation"


def _check_class_map(class_map: Mapping[str, str]) -> None:
    # A key that is no IEMOCAP label (a typo such as "hapy") would silently drop a whole class.
    unknown = sorted(set(class_map) - RAW_LABELS)
    if unknown:
        raise ValueError(f"class map keys {unknown} are not IEMOCAP labels (known: {sorted(RAW_LABELS)})")


def _session_dirs(root: Path, sessions: Collection[int] | None) -> dict[int, Path]:
    """``{session: SessionN folder}`` for the sessions to read, each checked to hold its label folder."""
    present = {n: root / f"Session{n}" for n in SESSIONS if (root / f"Session{n}").is_dir()}
    for session_dir in present.values():
        if not _emo_dir(session_dir).is_dir():
            raise NotIemocapRootError(f"{session_dir}: expected {session_dir.name}/dialog/EmoEvaluation/")
    if sessions is None:
        return present
    wanted = sorted(set(sessions))
    bad = [n for n in wanted if n not in SESSIONS]
    if bad:
        raise ValueError(f"IEMOCAP sessions are 1..5, got {bad}")
    absent = [n for n in wanted if n not in present]
    if absent:
        raise NotIemocapRootError(f"{root}: no Session{absent[0]}/dialog/EmoEvaluation/ (asked for {absent})")
    return {n: present[n] for n in wanted}


def _label_files(session_dir: Path) -> list[Path]:
    """The label files of a session: ``*.txt`` directly in EmoEvaluation/, without its sub-folders.

    Dotfiles are skipped: macOS copies leave ``._Ses01F_impro01.txt`` resource forks next to the labels.
    """
    emo_dir = _emo_dir(session_dir)
    return sorted(p for p in emo_dir.iterdir() if p.suffix == ".txt" and not p.name.startswith(".") and p.is_file())


def _labelled_utterances(session_dirs: Mapping[int, Path]) -> list[tuple[int, LabelLine]]:
    """Every consensus line of the sessions, as ``(session, line)``; each id must appear once."""
    seen: dict[str, str] = {}
    out = []
    for session, session_dir in session_dirs.items():
        for label_file in _label_files(session_dir):
            for line in parse_emo_evaluation(label_file):
                _check_session(label_file, session, line)
                _check_unique(label_file, line, seen)
                out.append((session, line))
    return out


def _check_unique(label_file: Path, line: LabelLine, seen: dict[str, str]) -> None:
    """Record where ``line``'s id is labelled in ``seen``; a second place is an error naming both."""
    if line.utt_id in seen:
        raise IemocapFormatError(
            label_file, line.line_no, f"utterance {line.utt_id} is already labelled at {seen[line.utt_id]}"
        )
    seen[line.utt_id] = f"{label_file}:{line.line_no}"


def _check_session(label_file: Path, session: int, line: LabelLine) -> None:
    id_session = int(_id_match(line.utt_id)["session"])
    if id_session != session:
        raise IemocapFormatError(
            label_file,
            line.line_no,
            f"utterance {line.utt_id} names session {id_session} but lies in Session{session}/",
        )


def _id_match(utt_id: str) -> re.Match[str]:
    match = UTTERANCE_RE.fullmatch(utt_id)
    assert match is not None  # parse_emo_evaluation has checked every id
    return match


def _wav_path(session_dir: Path, utt_id: str) -> Path:
    dialog = _id_match(utt_id)["dialog"]
    return session_dir / "sentences" / "wav" / dialog / f"{utt_id}.wav"


def _check_audio_exists(wavs: Iterable[Path]) -> None:
    missing = [wav for wav in wavs if not wav.is_file()]
    if missing:
        raise MissingAudioError(missing)


def _check_audio_complete(infos: Sequence[AudioInfo]) -> None:
    """Files cut short (an interrupted copy or extraction) are an error, all of them at once."""
    cut = [i for i in infos if i.truncated]
    if cut:
        shown = "".join(f"\n  {i.path}: {i.frames} of {i.declared_frames} frames" for i in cut[:_MISSING_SHOWN])
        rest = len(cut) - _MISSING_SHOWN
        more = f"\n  ... and {rest} more" if rest > 0 else ""
        raise AudioError(
            f"{len(cut)} WAV file(s) cut short (the header declares more audio than the file holds):{shown}{more}"
        )


def _missing_message(missing: tuple[Path, ...]) -> str:
    shown = "".join(f"\n  {p}" for p in missing[:_MISSING_SHOWN])
    rest = len(missing) - _MISSING_SHOWN
    more = f"\n  ... and {rest} more" if rest > 0 else ""
    return f"{len(missing)} WAV file(s) missing for labelled utterances:{shown}{more}"


def _record(session: int, line: LabelLine, info: AudioInfo, class_map: Mapping[str, str]) -> Utterance:
    match = _id_match(line.utt_id)
    gender = match["gender"]
    return Utterance(
        id=line.utt_id,
        path=info.path,
        session=session,
        dialog=match["dialog"],
        speaker=f"Ses{session:02d}{gender}",
        gender=gender,
        emotion=class_map[line.label],
        duration=info.duration,
        raw_label=line.label,
        extra=agreement_extra(line.votes, line.label, class_map),
    )


def _warn_on_conversions(root: Path, infos: Sequence[AudioInfo]) -> None:
    """One warning for all WAVs that loading converts: how many, and the first few of each kind."""
    resampled = [(i, f"{i.sample_rate} Hz") for i in infos if i.sample_rate != SAMPLE_RATE]
    downmixed = [(i, f"{i.channels} channels") for i in infos if i.channels != 1]
    kinds = (
        (resampled, f"WAV files resampled to {SAMPLE_RATE // 1000} kHz"),
        (downmixed, "WAV files downmixed to mono"),
    )
    parts = []
    for found, what in kinds:
        if found:
            shown = ", ".join(f"{i.path.relative_to(root)} {detail}" for i, detail in found[:_CONVERTED_SHOWN])
            more = f", ... and {len(found) - _CONVERTED_SHOWN} more" if len(found) > _CONVERTED_SHOWN else ""
            parts.append(f"{len(found)} of {len(infos)} {what} ({shown}{more})")
    if parts:
        warnings.warn(
            f"{root}: " + "; ".join(parts) + "; loading converts them each time", AudioConversionWarning, stacklevel=3
        )


class IemocapReader:
    """The corpus interface over :func:`read_iemocap` (also reads the embedded corpus, named ``embedded``).

    With ``unreadable="error"`` (the default) it keeps :func:`read_iemocap`'s strict checks: every missing
    WAV reported at once, the release's counts checked; with ``"drop"`` unreadable files are listed and
    left out through :func:`benchmark.data.corpus.read_corpus`.
    """

    labels = LABEL_WORDS
    class_map = DEFAULT_CLASS_MAP
    root_env = ROOT_ENV
    has_sessions = True

    def __init__(self, name: str = "iemocap", title: str = "IEMOCAP") -> None:
        self.name, self.title = name, title

    def list(self, root: Path) -> Listing:
        entries = []
        session_dirs = _session_dirs(resolve_root(root), None)
        for session, line in _labelled_utterances(session_dirs):
            match = _id_match(line.utt_id)
            entries.append(
                Entry(
                    id=line.utt_id,
                    path=_wav_path(session_dirs[session], line.utt_id),
                    speaker=f"Ses{session:02d}{match['gender']}",
                    gender=match["gender"],
                    label=line.label,
                    session=session,
                    dialog=match["dialog"],
                    # raw votes: agreement depends on the class map, which read() applies
                    extra=(("votes", _encode_votes(line.votes)),) if line.votes else (),
                )
            )
        return Listing(entries)

    def read(
        self,
        root: Path,
        *,
        class_map: Mapping[str, str] | None = None,
        keep_other: bool = False,
        unreadable: str = "error",
    ) -> CorpusReading:
        class_map = dict(DEFAULT_CLASS_MAP if class_map is None else class_map)
        if unreadable != "error":
            reading = read_corpus(self, root, class_map=class_map, keep_other=keep_other, unreadable=unreadable)
            if keep_other:
                class_map |= {label: word for label, word in LABEL_WORDS.items() if label not in class_map}
            return dataclasses.replace(reading, records=tuple(self._agreed(r, class_map) for r in reading.records))
        check_class_map(self, class_map)
        listing = self.list(root)
        dropped = Counter(label_reason(self, e.label) for e in listing.entries if e.label not in class_map)
        if keep_other:
            class_map |= {label: word for label, word in LABEL_WORDS.items() if label not in class_map}
            dropped.clear()
        records = read_iemocap(root, class_map)
        duplicates = find_duplicates([r.path for r in records])
        gone = {dup for dup, _ in duplicates}
        if duplicates:
            dropped[DUPLICATE] = len(duplicates)
        return CorpusReading(
            corpus=self.name,
            root=resolve_root(root),
            records=tuple(self._named(r) for r in records if r.path not in gone),
            dropped=dict(sorted(dropped.items())),
            duplicates=tuple(duplicates),
        )

    def _named(self, record: Utterance) -> Utterance:
        return record if record.corpus == self.name else dataclasses.replace(record, corpus=self.name)

    def _agreed(self, record: Utterance, class_map: Mapping[str, str]) -> Utterance:
        """A record read from the listing, its raw votes turned into agreement under ``class_map``."""
        votes = _decode_votes(dict(record.extra).get("votes", ""))
        extra = tuple(kv for kv in record.extra if kv[0] != "votes") + agreement_extra(
            votes, record.raw_label, class_map
        )
        return self._named(dataclasses.replace(record, extra=extra))


# --------------------------------------------------------------------------- counts and provenance


def summarize(records: Iterable[Utterance]) -> dict[str, Any]:
    """Counts of a set of records, in a stable JSON shape.

    Returns:
        ``{"total": n, "by_emotion": {code: n}, "by_session": {"1": n, ...}, "by_gender": {"F": n, "M": n}}``.
        Emotions follow :data:`records.CLASSES` order (other codes after them, sorted); sessions are in
        numeric order; both genders are always present.
    """
    records = list(records)
    emotions = Counter(r.emotion for r in records)
    sessions = Counter(r.session for r in records)
    genders = Counter(r.gender for r in records)
    emotion_order = [c for c in CLASSES if c in emotions] + sorted(set(emotions) - set(CLASSES))
    gender_order = list(GENDERS) + sorted(set(genders) - set(GENDERS))
    return {
        "total": len(records),
        "by_emotion": {code: emotions[code] for code in emotion_order},
        "by_session": {str(n): sessions[n] for n in sorted(sessions)},
        "by_gender": {g: genders[g] for g in gender_order},
    }


def corpus_source(root: str | Path | None) -> dict[str, Any]:
    """Where the records came from, for run metadata.

    Returns:
        ``{"kind": "embedded", **marker}`` for the suite's generated corpus (its marker file's contents),
        else ``{"kind": "iemocap", "root": "<root>"}``.
    """
    root = resolve_root(root)
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        return {"kind": "iemocap", "root": str(root)}
    content = json.loads(marker.read_text(encoding="utf-8"))
    if not isinstance(content, dict):
        raise ValueError(f"{marker}: expected a JSON object, got {type(content).__name__}")
    return {"kind": "embedded", **content}


def _looks_like_full_release(
    root: Path,
    class_map: Mapping[str, str],
    session_dirs: Mapping[int, Path],
    sessions: Collection[int] | None,
) -> bool:
    # Only then are the release's counts the right yardstick; the generated corpus has counts of its own.
    return (
        set(session_dirs) == set(SESSIONS)
        and (sessions is None or set(sessions) == set(SESSIONS))
        and dict(class_map) == dict(DEFAULT_CLASS_MAP)
        and not (root / SYNTHETIC_MARKER).exists()
    )


def _warn_on_count_mismatch(root: Path, found: Mapping[str, Any]) -> None:
    differences = _count_differences(EXPECTED_COUNTS, found)
    if differences:
        warnings.warn(
            f"{root}: the 4-class counts differ from the IEMOCAP release's (incomplete or altered copy?): "
            + "; ".join(differences),
            IemocapCountWarning,
            stacklevel=3,
        )


def _count_differences(expected: Mapping[str, Any], found: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"field: expected X, found Y"`` for every differing leaf of two nested count dicts."""
    out = []
    for key in list(expected) + [k for k in found if k not in expected]:
        want, got = expected.get(key, 0), found.get(key, 0)
        name = f"{prefix}{key}"
        if isinstance(want, Mapping) or isinstance(got, Mapping):
            out += _count_differences(want or {}, got or {}, prefix=f"{name}.")
        elif want != got:
            out.append(f"{name}: expected {want}, found {got}")
    return out
