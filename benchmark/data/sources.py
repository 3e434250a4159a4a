"""Where a run's data comes from: a user's IEMOCAP release, or the embedded corpus (generated once, cached).

Both go through the same IEMOCAP reader; reports say which one produced them via :meth:`DataSpec.describe`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.iemocap import corpus_source, read_iemocap, resolve_root
from benchmark.data.records import Utterance
from benchmark.data.synthetic import DEFAULT_SIZE, SynthConfig, embedded_corpus

CORPORA: tuple[str, ...] = ("iemocap", "embedded")


@dataclass(frozen=True)
class DataSpec:
    """The data of a study or a cell.

    Attributes:
        corpus: ``iemocap`` (a user's ``IEMOCAP_full_release/``) or ``embedded`` (the generated corpus).
        root: the IEMOCAP root; None means the ``IEMOCAP_ROOT`` environment variable.
        seed, size, control: the embedded corpus's generation parameters (see ``gemo-bench synth``).
    """

    corpus: str = "embedded"
    root: str | None = None
    seed: int = 0
    size: int = DEFAULT_SIZE
    control: bool = False

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {', '.join(CORPORA)}; got {self.corpus!r}")
        if self.corpus == "embedded":
            SynthConfig(seed=self.seed, size=self.size, control=self.control)  # validates the fields

    @classmethod
    def from_environment(cls, root: str | None = None, **embedded) -> DataSpec:
        """IEMOCAP when ``root`` or ``IEMOCAP_ROOT`` is given, else the embedded corpus."""
        root = root or os.environ.get("IEMOCAP_ROOT") or None
        return cls(corpus="iemocap", root=root) if root else cls(corpus="embedded", **embedded)

    def root_path(self) -> Path:
        """The tree to read, generating the embedded corpus into the cache on first use."""
        if self.corpus == "embedded":
            return embedded_corpus(SynthConfig(seed=self.seed, size=self.size, control=self.control))
        return resolve_root(self.root)

    def load(self) -> list[Utterance]:
        return read_iemocap(self.root_path())

    def describe(self) -> dict:
        """Which face of the suite produced a result: the real corpus or the generated one."""
        return corpus_source(self.root_path())


def fingerprint(records: Sequence[Utterance]) -> str:
    """A short hash of what a run trains and tests on: ids, labels, sessions and audio file sizes.

    It changes when an utterance, a label or an audio file changes, not when the tree moves.
    """
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.id):
        size = r.path.stat().st_size
        h.update(f"{r.id}\t{r.emotion}\t{r.gender}\t{r.session}\t{size}\t{r.duration:.4f}\n".encode())
    return h.hexdigest()[:16]
