"""One cell trained for real on the embedded corpus with tiny presets."""

import itertools
import math
from dataclasses import replace

import pytest

from benchmark.config import CellSpec, ClapConfig, TrainConfig
from benchmark.losses import NonFiniteLossError
from benchmark.train import lr_factor, train_cell

FAST = TrainConfig(epochs=2, batch_size=16, lr=3e-3, max_seconds=1.5)


def spec(variant="emo-clap", **kw):
    alpha = kw.pop("alpha", 1.0 if variant == "emo-clap" else 0.8)
    return CellSpec(
        "tiny-wavlm",
        "tiny-roberta",
        variant,
        fold=2,
        alpha=alpha,
        model=ClapConfig(proj_dim=32),
        train=kw.pop("train", FAST),
        **kw,
    )


def test_lr_schedule_warms_up_then_decays():
    total, warm = 100, 10
    f = [lr_factor(s, total, warm, "cosine") for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[9:])) and f[-1] < 0.01
    assert lr_factor(50, total, 0, "linear") == pytest.approx(0.5)
    assert lr_factor(99, total, 0, "constant") == 1.0


def test_cell_spec_validation():
    with pytest.raises(ValueError, match="emo-clap needs alpha=1"):
        spec("emo-clap", alpha=0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        spec("sl-gemo-clap", alpha=1.2)
    with pytest.raises(ValueError, match="variant must be one of"):
        spec("gemo")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    assert spec("ml-gemo-clap").model.gender_head
    assert not spec("ml-gemo-clap", ml_mode="prompt").model.gender_head


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "ml_mode"),
    [("emo-clap", "head"), ("sl-gemo-clap", "head"), ("ml-gemo-clap", "head"), ("ml-gemo-clap", "prompt")],
)
def test_each_variant_trains_and_reports(small_records, variant, ml_mode):
    result = train_cell(small_records, spec(variant, ml_mode=ml_mode), progress=False)
    out = result.summary()
    test_ids = {r.id for r in small_records if r.session == 2}
    assert {p["id"] for p in result.predictions} == test_ids
    assert out["sizes"]["test"] == len(test_ids)
    assert sum(map(sum, out["confusion"])) == len(test_ids)
    assert set(out["by_gender"]) == {"F", "M"}
    n_f = sum(1 for r in small_records if r.session == 2 and r.gender == "F")
    assert sum(map(sum, result.test["by_gender"]["F"]["confusion"])) == n_f
    assert len(result.history) == 2 and all(math.isfinite(h.train_loss) for h in result.history)
    assert result.best_epoch in (1, 2)
    # WAR recomputed from the predictions
    war = sum(p["emotion"] == p["predicted"] for p in result.predictions) / len(result.predictions)
    assert out["war"] == pytest.approx(war)
    # each prediction carries its utterance's label agreement, as the reader found it
    agreement = {r.id: r.agreement_text for r in small_records}
    assert all(p["agreement"] == agreement[p["id"]] in ("2/3", "3/3") for p in result.predictions)


@pytest.mark.slow
def test_same_seed_same_metrics_and_other_seed_differs(small_records):
    a = train_cell(small_records, spec("sl-gemo-clap"), progress=False)
    b = train_cell(small_records, spec("sl-gemo-clap"), progress=False)
    assert a.test == b.test
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    assert a.predictions == b.predictions
    c = train_cell(small_records, spec("sl-gemo-clap", seed=1), progress=False)
    assert [h.train_loss for h in c.history] != [h.train_loss for h in a.history]


@pytest.mark.slow
def test_learns_above_chance(small_records):
    # One seed's UAR on 40 test utterances swings by ±0.1 with the initialisation (a one-parameter change in
    # transformers' init moved it from 0.42 to 0.31), so the claim is made over three seeds. Chance is 0.25.
    cfg = replace(FAST, epochs=12, lr=1e-3, max_seconds=2.0)
    uars = [
        train_cell(small_records, spec("emo-clap", train=cfg, seed=seed), progress=False).test["uar"]
        for seed in range(3)
    ]
    assert min(uars) > 0.25 and sum(uars) / len(uars) > 0.35, uars


def test_diverging_run_stops_with_a_clear_error(small_records):
    cfg = replace(FAST, epochs=1, lr=1e30, max_seconds=1.0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at epoch 1, batch \d+ \(fold 2, emo-clap"):
        train_cell(small_records, spec(train=cfg), progress=False)


def test_early_stopping_stops(small_records):
    # With a zero learning rate nothing improves after epoch 1, so patience 1 stops after epoch 2.
    cfg = replace(FAST, epochs=5, lr=1e-12, early_stopping=1, max_seconds=1.0)
    result = train_cell(small_records, spec(train=cfg), progress=False)
    assert len(result.history) == 2 and result.best_epoch == 1
