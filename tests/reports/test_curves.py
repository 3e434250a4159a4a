"""The learning-curves report: per-epoch figures over folds, the chosen epochs, and what they say."""

import statistics

import pytest
from sqlalchemy.exc import OperationalError

from benchmark.cli import main
from benchmark.reports.curves import NoCurvesError, write_curves_report
from benchmark.tracking import Tracker

# validation UAR per epoch of each fold (fold 1 of emo-clap also has a second seed)
CURVES = {
    ("emo-clap", 1.0): {1: [0.30, 0.40, 0.50, 0.60], 2: [0.35, 0.45, 0.55, 0.62], 3: [0.28, 0.38, 0.52, 0.58]},
    ("sl-gemo-clap", 0.8): {1: [0.50, 0.40, 0.35, 0.30], 2: [0.55, 0.45, 0.40, 0.35], 3: [0.45, 0.44, 0.30, 0.28]},
    ("ml-gemo-clap", 0.8): {1: [0.25] * 4, 2: [0.25] * 4, 3: [0.25] * 4},
}
SECOND_SEED = [0.32, 0.42, 0.48, 0.64]
TEST_UAR = {1: 0.40, 2: 0.45, 3: 0.50}


def loss_of(val):
    return [1.5 - v for v in val]


def log_run(tracker, parent, variant, alpha, fold, seed, val, *, epochs=True):
    params = {"audio_encoder": "tiny-wavlm", "variant": variant, "alpha": alpha, "seed": seed, "fold": fold}
    run_id = tracker.start_cell(parent, f"{variant} {fold} {seed}", params, {"gemo.data_source": "embedded"})
    if epochs:
        for epoch, v in enumerate(val, start=1):
            tracker.log_metrics(
                run_id, {"val_uar": v, "val_war": v - 0.05, "train_loss": loss_of(val)[epoch - 1]}, epoch
            )
    best = max(range(len(val)), key=lambda i: (val[i], -i)) + 1  # the first best, as training keeps it
    tracker.log_metrics(run_id, {"test_uar": TEST_UAR[fold] + seed / 100, "test_war": 0.5, "best_epoch": best})
    tracker.end(run_id)
    return run_id


@pytest.fixture
def store(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "curves")
    for (variant, alpha), folds in CURVES.items():
        parent = tracker.parent(variant, variant, {}, {})
        for fold, val in folds.items():
            log_run(tracker, parent, variant, alpha, fold, 0, val)
            if variant == "emo-clap" and fold == 1:
                rerun = log_run(tracker, parent, variant, alpha, fold, 1, [0.0, *SECOND_SEED[1:]])
                # a step logged twice keeps its latest value: epoch 1 of this run is SECOND_SEED[0]
                later = 4_102_444_800_000  # 2100-01-01, in ms
                tracker.client.log_metric(rerun, "val_uar", SECOND_SEED[0], timestamp=later, step=1)
                tracker.client.log_metric(rerun, "train_loss", 1.5 - SECOND_SEED[0], timestamp=later, step=1)
    return tracker


def test_per_epoch_figures_average_seeds_then_folds(store, tmp_path):
    report = write_curves_report(store, "curves", tmp_path / "out")
    curves = report.curves.set_index(["variant", "epoch"])
    for (variant, _), folds in CURVES.items():
        for epoch in range(1, 5):
            per_fold = {f: val[epoch - 1] for f, val in folds.items()}
            if variant == "emo-clap":
                per_fold[1] = (per_fold[1] + SECOND_SEED[epoch - 1]) / 2
            values = list(per_fold.values())
            row = curves.loc[(variant, epoch)]
            assert row["folds"] == 3
            assert row["val_uar_mean"] == pytest.approx(statistics.mean(values))
            assert row["val_uar_std"] == pytest.approx(statistics.stdev(values))
            assert row["train_loss_mean"] == pytest.approx(statistics.mean(1.5 - v for v in values))
    assert list(dict.fromkeys(report.curves["variant"])) == ["emo-clap", "sl-gemo-clap", "ml-gemo-clap"]


def test_the_chosen_epochs_and_what_the_report_says_of_them(store, tmp_path):
    report = write_curves_report(store, "curves", tmp_path / "out")
    sel = report.selection.set_index("variant")
    emo = sel.loc["emo-clap"]
    assert (emo["runs"], emo["epochs_min"], emo["epochs_max"]) == (4, 4, 4)
    assert (emo["best_mean"], emo["best_is_last"]) == (4.0, 4)
    # validation at the chosen epoch and test, seeds averaged within a fold first
    val = statistics.mean([(0.60 + 0.64) / 2, 0.62, 0.58])
    test = statistics.mean([(0.40 + 0.41) / 2, 0.45, 0.50])
    assert emo["val_uar_best_mean"] == pytest.approx(val) and emo["test_uar_mean"] == pytest.approx(test)
    assert emo["val_minus_test"] == pytest.approx(val - test)
    sl = sel.loc["sl-gemo-clap"]
    assert (sl["best_mean"], sl["best_is_last"], sl["peaked_early"], sl["at_chance"]) == (1.0, 0, 3, 0)
    ml = sel.loc["ml-gemo-clap"]
    assert (ml["best_mean"], ml["at_chance"]) == (1.0, 3)

    text = report.markdown.read_text()
    assert "- **tiny-wavlm Emo-CLAP**: the chosen epoch was the last one trained in 4 of 4 fold runs" in text
    assert "- **tiny-wavlm SL-GEmo-CLAP α=0.8**: validation UAR peaked in the first third" in text
    assert "- **tiny-wavlm ML-GEmo-CLAP α=0.8**: validation UAR never rose above chance" in text
    assert "| Emo-CLAP | 4 | 4 | 4.0 (4–4) | 4 of 4 |" in text
    assert "![curves.png](curves.png)" in text
    page = (tmp_path / "out" / "curves" / "index.html").read_text()
    assert 'href="#curves">Learning curves</a>' in page and "data:image/png;base64," in page
    (study_run,) = store.runs("study")
    logged = {a.path for a in store.client.list_artifacts(study_run.run_id, "reports")}
    assert {"reports/curves.md", "reports/curves.csv", "reports/curves.png", "reports/index.html"} <= logged


def test_histories_from_the_tables_equal_the_apis(store, monkeypatch):
    runs = store.read_runs("cell")
    keys = ["val_uar", "train_loss", "never_logged"]
    fast = store.read_histories(runs, keys)
    assert len(fast) == 10 and all(set(h) == {"val_uar", "train_loss"} for h in fast.values())
    assert all([step for step, _ in h["val_uar"]] == [1, 2, 3, 4] for h in fast.values())

    def unexpected_schema(*args):
        raise OperationalError("SELECT ...", {}, Exception("no such column: is_nan"))

    monkeypatch.setattr(store, "_sql_histories", unexpected_schema)
    assert store.read_histories(runs, keys) == fast


def test_runs_without_epoch_metrics_are_one_error_and_nothing_is_written(tmp_path, capsys):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "mini")
    parent = tracker.parent("c", "c", {}, {})
    log_run(tracker, parent, "emo-clap", 1.0, 1, 0, [0.3, 0.4], epochs=False)
    with pytest.raises(NoCurvesError, match="none of its 1 finished fold runs logged per-epoch metrics"):
        write_curves_report(tracker, "mini", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    study = tmp_path / "mini.toml"
    study.write_text(
        f'name = "mini"\n[encoders]\naudio = ["tiny-wavlm"]\n[tracking]\nuri = "sqlite:///{tmp_path / "mlflow.db"}"\n'
    )
    assert main(["report", "curves", str(study), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(
        "gemo-bench: error: study 'mini': none of its 1 finished fold runs logged per-epoch"
    )
    assert not (tmp_path / "out").exists()


def test_a_simulated_store_carries_the_history_real_runs_log(tmp_path):
    from benchmark.reports.simulate import SimConfig, simulate_study

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "sim")
    configs = [SimConfig("tiny-wavlm", "emo-clap", skill=0.5), SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.6)]
    simulate_study(tracker, "sim", configs, folds=(1, 2), per_speaker=10, epochs=3)
    report = write_curves_report(tracker, "sim", tmp_path / "out")
    assert sorted(set(report.curves["epoch"])) == [1, 2, 3]
    # the validation figures rise to the last epoch, which is the chosen one, and end at the test figures
    assert list(report.selection["best_is_last"]) == [2, 2]
    assert (report.selection["val_minus_test"].abs() < 1e-12).all()
