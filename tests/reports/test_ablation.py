"""The ablation report on real MLflow stores of simulated studies: statistics recomputed by hand."""

import base64
import io
import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from benchmark.data.records import CLASSES
from benchmark.reports import stats
from benchmark.reports.ablation import write_ablation_report
from benchmark.reports.common import load_predictions
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker


@pytest.fixture(scope="module")
def report(sim_store, tmp_path_factory):
    _, main, _ = sim_store
    return write_ablation_report(main, "sim", tmp_path_factory.mktemp("out"), n_boot=1000)


def fold_metric(tracker, variant, metric="test_uar"):
    runs = [r for r in tracker.runs("cell", "FINISHED") if r.params["variant"] == variant]
    return {int(r.params["fold"]): r.metrics[metric] for r in runs}


def test_paired_t_statistic_equals_a_hand_computation_from_the_logged_metrics(report, sim_store):
    _, main, _ = sim_store
    sl, emo = fold_metric(main, "sl-gemo-clap"), fold_metric(main, "emo-clap")
    d = np.array([sl[f] - emo[f] for f in sorted(sl)])
    n = len(d)
    mean = d.sum() / n
    sd = math.sqrt(((d - mean) ** 2).sum() / (n - 1))
    t_hand = mean / (sd / math.sqrt(n))
    frame = pd.read_csv(report.csv)
    row = frame[frame["variant"] == "sl-gemo-clap"].iloc[0]
    assert row["uar_n_pairs"] == 5
    assert row["uar_diff"] == pytest.approx(mean)
    assert row["uar_t"] == pytest.approx(t_hand, rel=1e-9)
    # the simulated gain is 15 points on every speaker: every test sees it
    assert row["uar_p_t"] < 0.01 and row["uar_p_wilcoxon"] == pytest.approx(2 / 32)
    assert row["uar_significant"]
    # means and stds over folds, as the table defines them
    assert row["test_uar_mean"] == pytest.approx(np.mean(list(sl.values())))
    assert row["test_uar_std"] == pytest.approx(np.std(list(sl.values()), ddof=1))


def test_bootstrap_interval_is_recomputed_from_the_raw_predictions(report, sim_store):
    """The report's speaker bootstrap, redone here from the predictions artifacts with sklearn and pandas."""
    _, main, _ = sim_store
    frame = pd.read_csv(report.csv).set_index("variant")
    runs = main.runs("cell", "FINISHED")
    blobs = main.read_artifacts(runs, "predictions.csv")
    rows = []
    for r in runs:
        p = pd.read_csv(io.BytesIO(blobs[r.run_id]))
        rows.append(p.assign(variant=r.params["variant"]))
    preds = pd.concat(rows)
    # speakers in the report's order, so that the same seed draws the same resamples
    speakers = list(load_predictions(main, runs).speakers)
    assert sorted(speakers) == sorted(set(preds["speaker"]))
    genders = preds.groupby("speaker")["gender"].first().loc[speakers].to_numpy()

    def counts(variant):
        sub = preds[preds["variant"] == variant]
        per = [sub[sub["speaker"] == spk] for spk in speakers]
        return np.stack([confusion_matrix(p["emotion"], p["predicted"], labels=list(CLASSES)) for p in per]).astype(
            float
        )

    for variant, metric in (("sl-gemo-clap", "war"), ("ml-gemo-clap", "uar")):
        a, b = counts(variant), counts("emo-clap")
        f = stats.METRICS[metric]
        iv = stats.cluster_bootstrap(
            lambda w, a=a, b=b, f=f: f(stats.pooled(a, w)) - f(stats.pooled(b, w)), genders, n_boot=1000, seed=0
        )
        row = frame.loc[variant]
        assert row[f"{metric}_boot_diff"] == pytest.approx(iv.estimate)
        assert (row[f"{metric}_boot_low"], row[f"{metric}_boot_high"]) == pytest.approx((iv.low, iv.high))
    # pooled WAR difference by plain counting
    acc = preds.assign(ok=preds["emotion"] == preds["predicted"]).groupby("variant")["ok"].mean()
    assert frame.loc["sl-gemo-clap", "war_boot_diff"] == pytest.approx(acc["sl-gemo-clap"] - acc["emo-clap"])
    # simulated: SL is 11-15 points better, ML equal to Emo-CLAP
    assert frame.loc["sl-gemo-clap", "war_boot_low"] > 0
    assert frame.loc["ml-gemo-clap", "war_boot_low"] <= 0 <= frame.loc["ml-gemo-clap", "war_boot_high"]
    assert not frame.loc["ml-gemo-clap", "war_significant"]


def test_markdown_states_which_differences_are_significant(report):
    md = report.markdown.read_text()
    assert "- **data**: embedded corpus" in md and "- **weights**: simulated (tiny-wavlm)" in md
    assert re.search(r"SL-GEmo-CLAP α=0\.8: UAR \+\d+\.\d\d points .*\*\*Significant\*\*: better than Emo-CLAP", md)
    assert re.search(r"ML-GEmo-CLAP α=0\.8: UAR [+-]\d\.\d\d points .*Not significant\.", md)
    assert "Bonferroni threshold 0.0125" in md  # 4 t-tests
    assert "![ablation_alpha.png](ablation_alpha.png)" in md


def test_files_page_and_mlflow_artifacts(report, sim_store):
    _, main, _ = sim_store
    names = {p.name for p in report.folder.iterdir()}
    assert {
        "ablation.md",
        "ablation.csv",
        "ablation_classes.csv",
        "ablation_alpha.png",
        "ablation_diff.png",
        "ablation_classes.png",
        "index.html",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    for fig in report.figures:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size < 400_000
    page = report.page.read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 3 and base64.b64decode(embedded[0])[:4] == b"\x89PNG"
    assert 'src="ablation' not in page and "<table>" in page
    study = main.runs("study")
    assert len(study) == 1
    logged = {a.path for a in main.client.list_artifacts(study[0].run_id, "reports")}
    assert {
        "reports/ablation.md",
        "reports/ablation.csv",
        "reports/ablation_classes.csv",
        "reports/ablation_alpha.png",
        "reports/ablation_classes.png",
        "reports/index.html",
    } <= logged


def test_no_p_value_cases_are_explained(tmp_path):
    # one fold: no test; perfect predictions in both: all differences zero
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    one = Tracker(uri, "one")
    simulate_study(
        one,
        "one",
        [SimConfig("tiny-wavlm", "emo-clap"), SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8)],
        folds=(1,),
        per_speaker=10,
    )
    md = write_ablation_report(one, "one", tmp_path / "out", n_boot=100).markdown.read_text()
    assert "no p-value: 1 paired fold(s), a test needs 2" in md
    same = Tracker(uri, "same")
    perfect = [SimConfig("tiny-wavlm", "emo-clap", skill=1.0), SimConfig("tiny-wavlm", "ml-gemo-clap", 0.9, skill=1.0)]
    simulate_study(same, "same", perfect, folds=(1, 2, 3), per_speaker=10, speaker_sd=0.0, seed_sd=0.0)
    report = write_ablation_report(same, "same", tmp_path / "out", n_boot=100)
    md = report.markdown.read_text()
    assert "no p-value: the two agree on every fold (all differences 0)" in md
    row = pd.read_csv(report.csv).set_index("variant").loc["ml-gemo-clap"]
    assert math.isnan(row["uar_p_t"]) and row["uar_boot_low"] == 0 and row["uar_boot_high"] == 0


def test_a_varying_temperature_is_part_of_the_configuration(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "temps")
    configs = []
    for t, skill in ((0.07, 0.5), (0.05, 0.7)):
        configs += [
            SimConfig("tiny-hubert", "emo-clap", skill=skill, params={"model.temperature": t}),
            SimConfig("tiny-hubert", "sl-gemo-clap", 0.5, skill=skill, params={"model.temperature": t}),
            SimConfig("tiny-hubert", "sl-gemo-clap", 0.9, skill=skill, params={"model.temperature": t}),
        ]
    simulate_study(tracker, "temps", configs, folds=(1, 2, 3), per_speaker=20)
    report = write_ablation_report(tracker, "temps", tmp_path / "out", n_boot=100)
    frame = pd.read_csv(report.csv)
    assert len(frame) == 6
    assert set(frame["label"]) >= {"Emo-CLAP T=0.05", "SL-GEmo-CLAP α=0.9 T=0.07"}
    # each SL configuration is compared with the Emo-CLAP of its own temperature (equal skill: no gap)
    sl = frame[frame["variant"] == "sl-gemo-clap"]
    for _, r in sl.iterrows():
        assert r["baseline"].endswith(f"T={r['model.temperature']}")
        assert abs(r["uar_diff"]) < 0.15


def test_per_emotion_recall_changes_are_recomputed_from_the_raw_predictions(report, sim_store):
    """Each emotion's recall change, its paired t-test over folds and its speaker bootstrap, redone by hand."""
    from scipy.stats import ttest_rel
    from sklearn.metrics import recall_score

    _, main, _ = sim_store
    runs = main.runs("cell", "FINISHED")
    blobs = main.read_artifacts(runs, "predictions.csv")
    preds = {r.run_id: pd.read_csv(io.BytesIO(blobs[r.run_id])) for r in runs}
    by = {(r.params["variant"], int(r.params["fold"])): preds[r.run_id] for r in runs}
    speakers = list(load_predictions(main, runs).speakers)
    allp = pd.concat(preds.values())
    genders = allp.groupby("speaker")["gender"].first().loc[speakers].to_numpy()
    frame = pd.read_csv(report.classes_csv)
    assert len(frame) == 2 * len(CLASSES)  # SL and ML against Emo-CLAP, 4 emotions each
    for variant, label in (("sl-gemo-clap", "SL-GEmo-CLAP α=0.8"), ("ml-gemo-clap", "ML-GEmo-CLAP α=0.8")):
        pooled_a = pd.concat(by[variant, f] for f in range(1, 6))
        pooled_b = pd.concat(by["emo-clap", f] for f in range(1, 6))
        ra = recall_score(pooled_a["emotion"], pooled_a["predicted"], labels=list(CLASSES), average=None)
        rb = recall_score(pooled_b["emotion"], pooled_b["predicted"], labels=list(CLASSES), average=None)

        def counts(p):
            return np.stack(
                [
                    confusion_matrix(
                        p[p["speaker"] == s]["emotion"], p[p["speaker"] == s]["predicted"], labels=list(CLASSES)
                    )
                    for s in speakers
                ]
            ).astype(float)

        ca, cb = counts(pooled_a), counts(pooled_b)
        for k, emotion in enumerate(CLASSES):
            row = frame[(frame["configuration"] == label) & (frame["emotion"] == emotion)].iloc[0]
            assert row["baseline"] == "Emo-CLAP"
            assert (row["recall"], row["baseline_recall"]) == pytest.approx((ra[k], rb[k]))
            fa = [
                recall_score(
                    by[variant, f]["emotion"], by[variant, f]["predicted"], labels=list(CLASSES), average=None
                )[k]
                for f in range(1, 6)
            ]
            fb = [
                recall_score(
                    by["emo-clap", f]["emotion"], by["emo-clap", f]["predicted"], labels=list(CLASSES), average=None
                )[k]
                for f in range(1, 6)
            ]
            assert row["fold_diff"] == pytest.approx(np.mean(np.subtract(fa, fb)))
            assert row["p_t"] == pytest.approx(ttest_rel(fa, fb).pvalue)
            iv = stats.cluster_bootstrap(
                lambda w, k=k, ca=ca, cb=cb: (
                    stats.recalls_of(stats.pooled(ca, w))[:, k] - stats.recalls_of(stats.pooled(cb, w))[:, k]
                ),
                genders,
                n_boot=1000,
                seed=0,
            )
            assert (row["boot_low"], row["boot_high"]) == pytest.approx((iv.low, iv.high))
            assert row["significant"] == (row["p_t"] < 0.05 and (iv.low > 0 or iv.high < 0))
    md = report.markdown.read_text()
    assert "## Per emotion" in md and "| configuration | neutral | happy | angry | sad |" in md
    assert "![ablation_classes.png](ablation_classes.png)" in md
    n_sig = int(frame["significant"].sum())
    assert (f"{n_sig} of 8 per-emotion recall changes are significant:" in md) == (n_sig > 0)
    # simulated: SL is better on every speaker, ML equal to Emo-CLAP
    sl = frame[frame["configuration"].str.startswith("SL")]
    assert (sl["diff"] > 0).all() and sl["significant"].any()
