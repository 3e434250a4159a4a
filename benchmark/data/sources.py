"""Where a run's data comes from: any supported corpus under a user's root, or the embedded corpus.

Every corpus goes through its reader (:data:`READERS`, the interface in :mod:`benchmark.data.corpus`);
reports say which one produced a result via :meth:`DataSpec.describe`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.data.corpus import UNREADABLE_POLICIES, CorpusReader, CorpusReading, warn_conversions
from benchmark.data.cremad import CremadReader
from benchmark.data.emodb import EmodbReader
from benchmark.data.folds import assign_folds
from benchmark.data.iemocap import IemocapReader, corpus_source, resolve_root
from benchmark.data.manifest import ManifestReader
from benchmark.data.ravdess import RavdessReader
from benchmark.data.records import CLASSES, Utterance
from benchmark.data.synthetic import DEFAULT_SIZE, SynthConfig, embedded_corpus

READERS: Mapping[str, CorpusReader] = {
    "iemocap": IemocapReader(),
    "embedded": IemocapReader("embedded", "embedded corpus"),
    "ravdess": RavdessReader(),
    "cremad": CremadReader(),
    "emodb": EmodbReader(),
    "manifest": ManifestReader(),
}
CORPORA: tuple[str, ...] = tuple(READERS)
# IEMOCAP's dialogs are improvised (`Ses01F_impro01`) or scripted (`Ses01F_script01_1`); many SER papers
# report on the improvised ones alone, so a study can keep either kind.
SUBSETS: tuple[str, ...] = ("all", "improvised", "scripted")
_DIALOG_KIND = re.compile(r"^Ses\d{2}[FM]_(?P<kind>impro|script)")
_KIND_OF = {"impro": "improvised", "script": "scripted"}


class DataError(ValueError):
    """A data spec that cannot be read; the message names the corpus and what to set."""


@dataclass(frozen=True)
class DataSpec:
    """The data of a study or a cell.

    Attributes:
        corpus: a name from :data:`CORPORA`: ``iemocap`` (a user's ``IEMOCAP_full_release/``), ``embedded``
            (the generated corpus), ``ravdess``, ``cremad``, ``emodb`` or ``manifest`` (a CSV file).
        root: the corpus's root (the manifest file for ``manifest``); None means the reader's environment
            variable (``IEMOCAP_ROOT``, ``RAVDESS_ROOT``, ``CREMAD_ROOT``, ``EMODB_ROOT``, ``GEMO_MANIFEST``).
        seed, size, control: the embedded corpus's generation parameters (see ``gemo-bench synth``).
        folds: k of the speaker-independent k-fold used by corpora without sessions or manifest folds.
        fold_seed: seed of that fold assignment (fixed per study, so every seed trains on the same folds).
        unreadable: ``error`` (stop, listing every unreadable audio file) or ``drop`` (leave them out, listed).
        eval_corpora: corpora every trained cell is also scored on, whole (cross-corpus evaluation): a
            name (root from its environment variable) or ``name=root``.
        subset: ``all`` dialogs, or only the ``improvised`` or the ``scripted`` ones (IEMOCAP and the
            embedded corpus); the others are counted as dropped. It changes the data, so the cells' identity.
    """

    corpus: str = "embedded"
    root: str | None = None
    seed: int = 0
    size: int = DEFAULT_SIZE
    control: bool = False
    folds: int = 5
    fold_seed: int = 0
    unreadable: str = "error"
    eval_corpora: tuple[str, ...] = ()
    subset: str = "all"

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {', '.join(CORPORA)}; got {self.corpus!r}")
        if self.corpus == "embedded":
            SynthConfig(seed=self.seed, size=self.size, control=self.control)  # validates the fields
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.unreadable not in UNREADABLE_POLICIES:
            raise ValueError(f"unreadable must be one of {', '.join(UNREADABLE_POLICIES)}, got {self.unreadable!r}")
        if self.subset not in SUBSETS:
            raise ValueError(f"subset must be one of {', '.join(SUBSETS)}, got {self.subset!r}")
        if self.subset != "all" and self.corpus not in ("iemocap", "embedded"):
            raise ValueError(
                f"subset {self.subset!r}: only IEMOCAP-format corpora (iemocap, embedded) have improvised and "
                f"scripted dialogs, not {self.corpus}"
            )
        names = [self.eval_spec(item)[0] for item in self.eval_corpora]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_corpora: each corpus once, got {list(self.eval_corpora)}")

    @classmethod
    def from_environment(cls, root: str | None = None, **embedded) -> DataSpec:
        """IEMOCAP when ``root`` or ``IEMOCAP_ROOT`` is given, else the embedded corpus."""
        root = root or os.environ.get("IEMOCAP_ROOT") or None
        return cls(corpus="iemocap", root=root) if root else cls(corpus="embedded", **embedded)

    @property
    def reader(self) -> CorpusReader:
        return READERS[self.corpus]

    @property
    def session_folds(self) -> bool:
        """Folds are sessions (leave-one-session-out) rather than speaker k-fold or manifest folds."""
        return self.reader.has_sessions

    def root_path(self) -> Path:
        """The tree to read, generating the embedded corpus into the cache on first use."""
        if self.corpus == "embedded":
            return embedded_corpus(SynthConfig(seed=self.seed, size=self.size, control=self.control))
        if self.corpus == "iemocap":
            return resolve_root(self.root)
        root = self.root or os.environ.get(self.reader.root_env) or None
        if root is None:
            raise DataError(f"no {self.reader.title} root given: set data.root (--root ROOT) or {self.reader.root_env}")
        path = Path(root).expanduser()
        if not path.exists():
            raise DataError(f"{path}: {self.reader.title} root not found")
        return path

    def read(self, *, keep_other: bool = False, unreadable: str | None = None) -> CorpusReading:
        """The corpus through its reader: records (with folds assigned) plus what was dropped and why."""
        reading = self.reader.read(self.root_path(), keep_other=keep_other, unreadable=unreadable or self.unreadable)
        warn_conversions(reading)
        if self.subset != "all":
            reading = _keep_dialogs(reading, self.subset)
        if not reading.records:
            raise DataError(f"{reading.root}: no {self.reader.title} utterances of the classes {', '.join(CLASSES)}")
        if self.session_folds or all(r.fold is not None for r in reading.records):
            return reading
        return _replace_records(reading, assign_folds(reading.records, self.folds, self.fold_seed))

    def load(self) -> list[Utterance]:
        return list(self.read().records)

    def describe(self) -> dict[str, Any]:
        """Which face of the suite produced a result: a real corpus (which, where) or the generated one."""
        subset = {} if self.subset == "all" else {"subset": self.subset}
        if self.corpus in ("iemocap", "embedded"):
            return {**corpus_source(self.root_path()), **subset}
        return {"kind": self.corpus, "root": str(self.root_path()), **subset}

    def eval_specs(self) -> list[tuple[str, DataSpec]]:
        """``(name, spec)`` of each cross-corpus evaluation corpus."""
        out = []
        for item in self.eval_corpora:
            name, root = self.eval_spec(item)
            out.append((name, DataSpec(corpus=name, root=root, unreadable=self.unreadable)))
        return out

    @staticmethod
    def eval_spec(item: str) -> tuple[str, str | None]:
        name, sep, root = item.partition("=")
        name = name.strip()
        if name not in CORPORA:
            raise ValueError(f"eval_corpora: unknown corpus {name!r} (choose from {', '.join(CORPORA)})")
        return name, (root.strip() or None) if sep else None


def _keep_dialogs(reading: CorpusReading, subset: str) -> CorpusReading:
    """The records of ``subset``'s dialogs; the others are counted in ``dropped``, by their kind."""
    kept, dropped = [], dict(reading.dropped)
    for r in reading.records:
        match = _DIALOG_KIND.match(r.dialog)
        if match is None:
            raise DataError(
                f"{r.path}: dialog {r.dialog!r} is neither improvised nor scripted (data.subset = {subset!r})"
            )
        kind = _KIND_OF[match["kind"]]
        if kind == subset:
            kept.append(r)
        else:
            reason = f"{kind} dialog (data.subset = {subset})"
            dropped[reason] = dropped.get(reason, 0) + 1
    return replace(reading, records=tuple(kept), dropped=dict(sorted(dropped.items())))


def _replace_records(reading: CorpusReading, records: Sequence[Utterance]) -> CorpusReading:
    return replace(reading, records=tuple(records))


def fingerprint(records: Sequence[Utterance]) -> str:
    """A short hash of what a run trains and tests on: ids, labels, folds and audio file sizes.

    It changes when an utterance, a label, a fold or an audio file changes, not when the tree moves.
    """
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.id):
        size = r.path.stat().st_size
        line = f"{r.id}\t{r.emotion}\t{r.gender}\t{r.session}\t{size}\t{r.duration:.4f}"
        # session-fold corpora keep the line they always had, so their cell ids stay the same
        if r.fold is not None:
            line += f"\t{r.fold}\t{r.speaker}"
        h.update(f"{line}\n".encode())
    return h.hexdigest()[:16]
