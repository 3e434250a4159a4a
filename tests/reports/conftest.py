"""Simulated studies in real MLflow stores, written once per test module through the Tracker."""

import pytest

from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker

# SL-GEmo-CLAP is 15 points better than Emo-CLAP on the main study and equal on the control; ML equals.
# Embeddings: SL-GEmo-CLAP's carry a gender direction, the others' none.
MAIN = [
    SimConfig("tiny-wavlm", "emo-clap", skill=0.5, gender_shift={"M": 0.04}, emb_gender=0.0),
    SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.65, gender_shift={"M": 0.0}, emb_gender=0.8),
    SimConfig("tiny-wavlm", "ml-gemo-clap", 0.8, skill=0.5, gender_shift={"M": 0.04}, emb_gender=0.0),
]
CONTROL = [SimConfig(c.encoder, c.variant, c.alpha, skill=0.5, gender_shift={"M": 0.04}) for c in MAIN]


@pytest.fixture(scope="package")
def sim_store(tmp_path_factory):
    """(uri, main tracker, control tracker): 3 configurations x 5 folds each, predictions, cross-corpus metrics."""
    root = tmp_path_factory.mktemp("sim-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    main, control = Tracker(uri, "sim"), Tracker(uri, "sim_control")
    # no per-run model noise (seed_sd=0): the true differences are then exactly the simulated ones
    xc = {"ravdess": (6, 20), "crema_d": (4, 20)}
    simulate_study(main, "sim", MAIN, per_speaker=80, seed_sd=0.0, eval_corpora=xc)
    simulate_study(control, "sim_control", CONTROL, per_speaker=80, seed_sd=0.0, data={"control": True}, seed=1)
    return uri, main, control
