"""Leave-one-session-out folds, with validation carved from the training sessions only."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sklearn.model_selection import train_test_split

from benchmark.data.records import Utterance

ValStrategy = Literal["stratified", "session"]
VAL_STRATEGIES: tuple[str, ...] = ("stratified", "session")


@dataclass(frozen=True)
class Fold:
    """One leave-one-session-out fold: ``test`` is one session; ``train`` and ``val`` come from the others."""

    test_session: int
    train: tuple[Utterance, ...]
    val: tuple[Utterance, ...]
    test: tuple[Utterance, ...]


def sessions_of(records: Sequence[Utterance]) -> list[int]:
    return sorted({r.session for r in records})


def loso_fold(
    records: Sequence[Utterance],
    test_session: int,
    *,
    val_fraction: float = 0.1,
    val_strategy: ValStrategy = "stratified",
    seed: int = 0,
) -> Fold:
    """Split ``records`` for the fold that tests on ``test_session``.

    Validation never touches the test session (selecting epochs on the test fold is the best-known
    flaw in published SER numbers):

    - ``"stratified"`` (default): a seeded ``val_fraction`` of the training sessions, stratified by
      emotion x gender, so validation has the same class and gender mix as training.
    - ``"session"``: the whole next training session (cyclically after the test session) is validation,
      which keeps validation speaker-independent; ``val_fraction`` is unused.
    """
    sessions = sessions_of(records)
    if test_session not in sessions:
        raise ValueError(f"fold {test_session}: no session {test_session} in the data (sessions: {sessions})")
    if len(sessions) < 2:
        raise ValueError(f"leave-one-session-out needs at least 2 sessions, the data has {sessions}")
    test = tuple(r for r in records if r.session == test_session)
    rest = [r for r in records if r.session != test_session]
    if val_strategy == "session":
        later = [s for s in sessions if s > test_session] or sessions
        val_session = next(s for s in later if s != test_session)
        train = tuple(r for r in rest if r.session != val_session)
        val = tuple(r for r in rest if r.session == val_session)
    elif val_strategy == "stratified":
        train, val = _stratified_split(rest, val_fraction, seed)
    else:
        raise ValueError(f"val_strategy must be one of {VAL_STRATEGIES}, got {val_strategy!r}")
    return Fold(test_session=test_session, train=train, val=val, test=test)


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
    train, val = train_test_split(records, test_size=n_val, stratify=strata, random_state=seed)
    return tuple(train), tuple(val)
