"""What a study costs in training audio: the input of the benchmark's GPU-hours estimate.

A cell trains ``epochs`` passes over its fold's training split, each utterance cropped to ``train.max_seconds``.
For IEMOCAP the split sizes come from the release's per-session counts (the corpus itself is not needed) and the
cropped mean duration from :class:`~benchmark.perf.durations.DurationModel`; for the embedded corpus the folds are
cut from its records. Evaluation passes (forward only, over the validation split each epoch and the test session
once) are not included, nor is early stopping: the estimate is for the full epoch budget of training steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmark.config import CellSpec
from benchmark.data.folds import split_fold
from benchmark.data.iemocap import EXPECTED_COUNTS
from benchmark.data.records import Utterance
from benchmark.perf.durations import DurationModel
from benchmark.studies import Study


def iemocap_train_utterances(test_session: int, val_fraction: float, val_strategy: str) -> int:
    """Training utterances of an IEMOCAP fold (as :func:`~benchmark.data.folds.split_fold` cuts it)."""
    by_session = {int(k): v for k, v in EXPECTED_COUNTS["by_session"].items()}
    rest = EXPECTED_COUNTS["total"] - by_session[test_session]
    if val_strategy == "session":
        later = [s for s in sorted(by_session) if s > test_session] or sorted(by_session)
        val_session = next(s for s in later if s != test_session)
        return rest - by_session[val_session]
    return rest - math.ceil(val_fraction * rest)


def train_audio_seconds(cells: Sequence[CellSpec], records: Sequence[Utterance]) -> float:
    """Audio seconds the cells' training steps go through: epochs x their fold's cropped training audio."""
    total = 0.0
    splits: dict[tuple, float] = {}
    for cell in cells:
        cfg = cell.train
        key = (cell.fold, cell.seed, cfg.val_fraction, cfg.val_strategy, cfg.max_seconds)
        if key not in splits:
            try:
                fold = split_fold(
                    records, cell.fold, val_fraction=cfg.val_fraction, val_strategy=cfg.val_strategy, seed=cell.seed
                )
            except ValueError:  # a fold the data lacks trains nothing (the study's check names it)
                splits[key] = 0.0
            else:
                splits[key] = sum(min(r.duration, cfg.max_seconds) for r in fold.train)
        total += cfg.epochs * splits[key]
    return total


def study_train_audio_seconds(
    study: Study, durations: DurationModel | None = None, cells: Sequence[CellSpec] | None = None
) -> dict:
    """Audio seconds that the study's training steps go through, summed over its cells and epochs.

    Args:
        cells: only these of the study's cells (default: all of them), e.g. one audio encoder's.

    Returns:
        ``{"cells", "epochs", "train_audio_seconds", "corpus"}``; ``epochs`` lists the distinct epoch counts.
    """
    durations = durations or DurationModel.iemocap()
    cells = study.cells() if cells is None else cells
    if study.data.corpus == "embedded":
        total = train_audio_seconds(cells, study.data.load())
    else:
        total = 0.0
        for cell in cells:
            cfg = cell.train
            n = iemocap_train_utterances(cell.fold, cfg.val_fraction, cfg.val_strategy)
            total += cfg.epochs * n * durations.cropped_mean(cfg.max_seconds)
    return {
        "study": study.name,
        "corpus": study.data.corpus,
        "cells": len(cells),
        "epochs": sorted({c.train.epochs for c in cells}),
        "train_audio_seconds": total,
    }
