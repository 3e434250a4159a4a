"""Cross-validation folds for every corpus, with validation carved from the training speakers only.

Each utterance has a test fold (:attr:`Utterance.test_fold`): its session on IEMOCAP and the embedded
corpus (leave-one-session-out), the manifest's ``fold`` column where a manifest gives one, and otherwise a
speaker-independent k-fold assignment (:func:`assign_folds`: speakers grouped, genders balanced, seeded).
:func:`split_fold` then tests on one fold and trains on the others.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from benchmark.config import VAL_STRATEGIES
from benchmark.data.records import Utterance

ValStrategy = Literal["stratified", "session"]


@dataclass(frozen=True)
class Fold:
    """One fold: ``test`` is one fold's utterances (a session on IEMOCAP); ``train`` and ``val`` the others'."""

    test_fold: int
    train: tuple[Utterance, ...]
    val: tuple[Utterance, ...]
    test: tuple[Utterance, ...]


def folds_of(records: Sequence[Utterance]) -> list[int]:
    """The test folds present in ``records`` (sessions where no fold is assigned)."""
    return sorted({r.test_fold for r in records if r.test_fold is not None})


def assign_folds(records: Sequence[Utterance], k: int, seed: int = 0) -> list[Utterance]:
    """Speaker-independent k-fold: every speaker's utterances in one fold, genders balanced across folds.

    Uses scikit-learn's ``StratifiedGroupKFold`` (groups = speakers, strata = gender) shuffled with
    ``seed``, so the same records, k and seed always give the same folds. Folds are numbered 1..k.

    Raises:
        ValueError: fewer speakers than folds.
    """
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    speakers = sorted({r.speaker for r in records})
    if len(speakers) < k:
        raise ValueError(f"{len(speakers)} speakers cannot fill {k} speaker-independent folds; lower data.folds")
    # sort first so the assignment does not depend on the order the reader listed files in
    ordered = sorted(records, key=lambda r: r.id)
    from sklearn.model_selection import StratifiedGroupKFold  # deferred: reading a study needs no sklearn

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_of: dict[str, int] = {}
    genders = [r.gender for r in ordered]
    groups = [r.speaker for r in ordered]
    for number, (_, test_index) in enumerate(splitter.split(ordered, genders, groups), start=1):
        for i in test_index:
            fold_of[ordered[i].id] = number
    return [dataclasses.replace(r, fold=fold_of[r.id]) for r in records]


def split_fold(
    records: Sequence[Utterance],
    test_fold: int,
    *,
    val_fraction: float = 0.1,
    val_strategy: ValStrategy = "stratified",
    seed: int = 0,
) -> Fold:
    """Split ``records`` for the fold that tests on ``test_fold`` (a session on IEMOCAP).

    Validation never touches the test fold (selecting epochs on the test fold is the best-known flaw in
    published SER numbers):

    - ``"stratified"`` (default): a seeded ``val_fraction`` of the training folds, stratified by
      emotion x gender, so validation has the same class and gender mix as training.
    - ``"session"``: the whole next training fold (cyclically after the test fold; the next session on
      IEMOCAP) is validation, which keeps validation speaker-independent; ``val_fraction`` is unused.
    """
    folds = folds_of(records)
    if test_fold not in folds:
        raise ValueError(f"fold {test_fold}: no fold {test_fold} in the data (folds: {folds})")
    if len(folds) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, the data has {folds}")
    test = tuple(r for r in records if r.test_fold == test_fold)
    rest = [r for r in records if r.test_fold != test_fold]
    if val_strategy == "session":
        later = [s for s in folds if s > test_fold] or folds
        val_fold = next(s for s in later if s != test_fold)
        train = tuple(r for r in rest if r.test_fold != val_fold)
        val = tuple(r for r in rest if r.test_fold == val_fold)
    elif val_strategy == "stratified":
        train, val = _stratified_split(rest, val_fraction, seed)
    else:
        raise ValueError(f"val_strategy must be one of {VAL_STRATEGIES}, got {val_strategy!r}")
    return Fold(test_fold=test_fold, train=train, val=val, test=test)


def _stratified_split(
    records: list[Utterance], val_fraction: float, seed: int
) -> tuple[tuple[Utterance, ...], tuple[Utterance, ...]]:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    strata = [f"{r.emotion}|{r.gender}" for r in records]
    small = {s: n for s, n in Counter(strata).items() if n < 2}
    if small:
        raise ValueError(f"cannot stratify validation by emotion x gender: groups with < 2 utterances: {small}")
    n_val, n_groups = math.ceil(val_fraction * len(records)), len(set(strata))
    if n_val < n_groups:
        raise ValueError(
            f"validation of {n_val} utterances ({val_fraction:g} of {len(records)}) cannot hold all {n_groups} "
            "emotion x gender groups; raise val_fraction, use more data, or val_strategy='session'"
        )
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(records, test_size=n_val, stratify=strata, random_state=seed)
    return tuple(train), tuple(val)
