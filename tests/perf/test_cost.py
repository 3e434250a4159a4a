"""A study's training audio: IEMOCAP fold sizes from the release's counts agree with the real fold code."""

import random
from pathlib import Path

import pytest

from benchmark.data.folds import split_fold
from benchmark.data.iemocap import EXPECTED_COUNTS
from benchmark.data.records import CLASSES, Utterance
from benchmark.perf.cost import iemocap_train_utterances, study_train_audio_seconds
from benchmark.perf.durations import DurationModel
from benchmark.studies import load_study


@pytest.fixture(scope="module")
def iemocap_shaped():
    """Records with IEMOCAP's per-session counts (no audio: only the split sizes matter here)."""
    rng = random.Random(0)
    records = []
    for session, n in EXPECTED_COUNTS["by_session"].items():
        for i in range(n):
            g = rng.choice("FM")
            records.append(
                Utterance(
                    f"Ses0{session}F_x_{g}{i:03d}", None, int(session), "d", "s", g, rng.choice(CLASSES), 1.0, "neu"
                )
            )
    return records


@pytest.mark.parametrize(("fold", "strategy"), [(1, "stratified"), (5, "stratified"), (3, "session"), (5, "session")])
def test_fold_sizes_match_split_fold(iemocap_shaped, fold, strategy):
    split = split_fold(iemocap_shaped, fold, val_fraction=0.1, val_strategy=strategy, seed=0)
    assert iemocap_train_utterances(fold, 0.1, strategy) == len(split.train)


def test_paper_table_training_audio():
    study = load_study(Path(__file__).parents[2] / "studies" / "paper_table.toml")
    cost = study_train_audio_seconds(study)
    cfg = study.cells()[0].train
    per_epoch = sum(iemocap_train_utterances(f, cfg.val_fraction, cfg.val_strategy) for f in range(1, 6))
    expected = 4 * 3 * cfg.epochs * per_epoch * DurationModel.iemocap().cropped_mean(cfg.max_seconds)
    assert cost["cells"] == 60 and cost["epochs"] == [cfg.epochs]
    assert cost["train_audio_seconds"] == pytest.approx(expected)
