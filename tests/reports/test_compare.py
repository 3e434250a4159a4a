"""The reproduction report on two real MLflow stores of simulated studies: every figure recomputed by hand.

Both stores hold the same grid drawn from the same generator, so their test utterances and, configuration by
configuration, their predictions are the same, except where B's configuration was simulated otherwise (SL-
GEmo-CLAP 15 points weaker, and logged with another precision).
"""

import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from benchmark.cli import main
from benchmark.data.records import CLASSES
from benchmark.reports import stats
from benchmark.reports.compare import write_compare_report
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker

A = [
    SimConfig("tiny-wavlm", "emo-clap", skill=0.5),
    SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.65),
    SimConfig("tiny-wavlm", "ml-gemo-clap", 0.8, skill=0.5),
]
B = [A[0], SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.5, params={"train.precision": "bf16"}), A[2]]

STUDY = """
name = "{name}"
[data]
corpus = "embedded"
[encoders]
audio = ["tiny-wavlm"]
text = "tiny-roberta"
[tracking]
uri = "{uri}"
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    a = Tracker(f"sqlite:///{root / 'a' / 'mlflow.db'}", "repro_a")
    b = Tracker(f"sqlite:///{root / 'b' / 'mlflow.db'}", "repro_b")
    simulate_study(a, "repro_a", A, per_speaker=40, seed_sd=0.0, seed=3)
    simulate_study(b, "repro_b", B, per_speaker=40, seed_sd=0.0, seed=3)
    return root, a, b


@pytest.fixture(scope="module")
def report(stores):
    root, a, b = stores
    return write_compare_report(a, b, "repro_a", "repro_b", root / "out", n_boot=500)


def raw(tracker: Tracker) -> dict[tuple[str, int], pd.DataFrame]:
    runs = tracker.runs("cell", "FINISHED")
    blobs = tracker.read_artifacts(runs, "predictions.csv")
    return {(r.params["variant"], int(r.params["fold"])): pd.read_csv(io.BytesIO(blobs[r.run_id])) for r in runs}


def test_every_figure_is_recomputed_from_the_raw_runs(report, stores):
    _, a, b = stores
    pa, pb = raw(a), raw(b)
    frame = pd.read_csv(report.csv).set_index("configuration")
    assert list(frame.index) == ["Emo-CLAP", "SL-GEmo-CLAP α=0.8", "ML-GEmo-CLAP α=0.8"]
    for variant, label in (("emo-clap", "Emo-CLAP"), ("sl-gemo-clap", "SL-GEmo-CLAP α=0.8")):
        row = frame.loc[label]
        merged = pd.concat(pa[variant, f].merge(pb[variant, f], on="id", suffixes=("_a", "_b")) for f in range(1, 6))
        assert row["shared_utterances"] == len(merged) == 5 * 2 * 40
        assert row["same_predictions"] == int((merged["predicted_a"] == merged["predicted_b"]).sum())
        kappa = cohen_kappa_score(merged["predicted_a"], merged["predicted_b"], labels=list(CLASSES))
        assert row["kappa"] == pytest.approx(kappa)
        for metric in ("war", "uar"):
            fa = [a_m for a_m in _fold_metric(a, variant, metric)]
            fb = [b_m for b_m in _fold_metric(b, variant, metric)]
            assert row[f"{metric}_diff"] == pytest.approx(np.mean(np.subtract(fa, fb)))
            if fa == fb:
                assert math.isnan(row[f"{metric}_p_t"])  # the same on every fold: no p-value
            else:
                assert row[f"{metric}_p_t"] == pytest.approx(ttest_rel(fa, fb).pvalue)
            # the bootstrap, from per-speaker confusion counts built with scikit-learn
            speakers = sorted(set(merged["speaker_a"]))
            genders = merged.groupby("speaker_a")["gender_a"].first().loc[speakers].to_numpy()

            def counts(side, merged=merged, speakers=speakers):
                rows = [merged[merged["speaker_a"] == s] for s in speakers]
                return np.stack(
                    [confusion_matrix(r["emotion_a"], r[f"predicted_{side}"], labels=list(CLASSES)) for r in rows]
                ).astype(float)

            ca, cb, f = counts("a"), counts("b"), stats.METRICS[metric]
            iv = stats.cluster_bootstrap(
                lambda w, ca=ca, cb=cb, f=f: f(stats.pooled(ca, w)) - f(stats.pooled(cb, w)),
                genders,
                n_boot=500,
                seed=0,
            )
            assert row[f"{metric}_boot_diff"] == pytest.approx(iv.estimate)
            assert (row[f"{metric}_boot_low"], row[f"{metric}_boot_high"]) == pytest.approx((iv.low, iv.high))
    # the same generator, the same configuration: the same model to the last decision
    assert frame.loc["Emo-CLAP", "same_predictions"] == frame.loc["Emo-CLAP", "shared_utterances"]
    assert frame.loc["Emo-CLAP", "verdict"] == "identical predictions"
    assert frame.loc["SL-GEmo-CLAP α=0.8", "verdict"] == "differ significantly in WAR and UAR"
    assert frame.loc["SL-GEmo-CLAP α=0.8", "uar_diff"] > 0.1  # A was simulated 15 points better


def _fold_metric(tracker: Tracker, variant: str, metric: str) -> list[float]:
    runs = [r for r in tracker.runs("cell", "FINISHED") if r.params["variant"] == variant]
    return [r.metrics[f"test_{metric}"] for r in sorted(runs, key=lambda r: int(r.params["fold"]))]


def test_what_differs_and_the_summary(report):
    diffs = {key: (va, vb) for key, va, vb in report.differences}
    assert diffs["train.precision"] == ("auto", "auto, bf16")
    assert "gemo.data_fingerprint" in diffs  # the simulated fingerprint hashes the study's name
    assert "model.temperature" not in diffs and "fold" not in diffs
    md = report.markdown.read_text()
    assert "# repro_a vs repro_b: do two runs of the same grid agree?" in md
    assert "| train.precision | auto | auto, bf16 |" in md
    assert "2 of 3 configurations agree (2 with identical predictions); 1 differs significantly." in md
    assert "Over the 1,200 test predictions the matched runs share (all configurations)" in md
    assert "![compare.png](compare.png)" in md and report.figures[0].read_bytes()[:4] == b"\x89PNG"
    page = report.page.read_text()
    assert "Comparison" in page


def test_one_study_in_two_stores_is_told_apart_and_the_same_runs_twice_is_an_error(stores, tmp_path, capsys):
    root, _, _ = stores
    for side in ("a", "b"):
        (tmp_path / f"{side}.toml").write_text(
            STUDY.format(name=f"repro_{side}", uri=f"sqlite:///{root / side / 'mlflow.db'}")
        )
    assert (
        main(
            [
                "report",
                "compare",
                str(tmp_path / "a.toml"),
                str(tmp_path / "b.toml"),
                "--out",
                str(tmp_path / "r"),
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "repro_a" / "compare.md").is_file()
    capsys.readouterr()
    code = main(["report", "compare", str(tmp_path / "a.toml"), str(tmp_path / "a.toml"), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "both log to experiment 'repro_a' of the same store" in err
    assert not (tmp_path / "s").exists()


def test_per_gender_uar_differences_over_folds(report, stores):
    _, a, b = stores
    frame = pd.read_csv(report.csv).set_index("configuration")
    for g in ("F", "M"):
        fa = _fold_metric(a, "sl-gemo-clap", f"uar_{g}")
        fb = _fold_metric(b, "sl-gemo-clap", f"uar_{g}")
        row = frame.loc["SL-GEmo-CLAP α=0.8"]
        assert (row[f"uar_{g}_a"], row[f"uar_{g}_b"]) == pytest.approx((np.mean(fa), np.mean(fb)))
        assert row[f"uar_{g}_diff"] == pytest.approx(np.mean(np.subtract(fa, fb)))
        assert row[f"uar_{g}_p_t"] == pytest.approx(ttest_rel(fa, fb).pvalue)
        assert frame.loc["Emo-CLAP", f"uar_{g}_diff"] == 0.0
    md = report.markdown.read_text()
    assert "### Per gender" in md and "| encoder | configuration | UAR F repro_a | UAR F repro_b | Δ UAR F |" in md
    moved = frame.loc["SL-GEmo-CLAP α=0.8", ["uar_F_p_t", "uar_M_p_t"]].lt(0.05)
    assert ("Per-gender UAR moved" in md) == bool(moved.any())


def test_without_shared_predictions_the_folds_alone_speak(stores):
    from benchmark.reports.common import load_cells
    from benchmark.reports.compare import compare_studies, summary_lines

    _, a, b = stores
    result = compare_studies(load_cells(a, "repro_a"), load_cells(b, "repro_b"), {}, {}, n_boot=100)
    by = {r.label: r for r in result}
    assert all(r.agreement is None and r.boots == {"war": None, "uar": None} for r in result)
    assert by["SL-GEmo-CLAP α=0.8"].verdict == "differ over folds in WAR and UAR (no shared predictions to confirm)"
    assert by["Emo-CLAP"].verdict == "agree within noise"  # equal on every fold: no p-value, no difference
    lines = summary_lines(result, ("a", "b"))
    assert lines[1].startswith("No matched runs share test utterances with predictions")
    assert lines[-1].startswith("- tiny-wavlm: SL-GEmo-CLAP α=0.8: WAR +")
