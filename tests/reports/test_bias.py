"""The bias report: fairness metrics against hand-computed cases and fairlearn on raw predictions."""

import io

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference
from sklearn.metrics import confusion_matrix

from benchmark.data.records import CLASSES, GENDERS
from benchmark.reports import stats
from benchmark.reports.bias import (
    equalized_odds,
    fairness_frame,
    gap_change,
    gap_interval,
    weighted_rows,
    write_bias_report,
)
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker

NEU, HAP, ANG, SAD = range(4)


def hand_case():
    """Happy one-vs-rest: female TPR 3/4, FPR 1/8; male TPR 1/4, FPR 2/8 -> equalized-odds difference 0.5."""
    y, p, g = [], [], []
    for gender, hits, false_alarms in (("F", 3, 1), ("M", 1, 2)):
        y += [HAP] * 4 + [NEU] * 8
        p += [HAP] * hits + [SAD] * (4 - hits) + [HAP] * false_alarms + [NEU] * (8 - false_alarms)
        g += [gender] * 12
    return np.array(y), np.array(p), np.array(g)


def confusions(y, p, g, configs=None):
    configs = np.zeros(len(y), dtype=int) if configs is None else configs
    return np.stack(
        [
            np.stack(
                [
                    confusion_matrix(y[(configs == c) & (g == s)], p[(configs == c) & (g == s)], labels=range(4))
                    for s in GENDERS
                ]
            )
            for c in np.unique(configs)
        ]
    ).astype(float)


def test_equalized_odds_difference_of_a_hand_computed_case():
    y, p, g = hand_case()
    assert equalized_odds_difference(y == HAP, p == HAP, sensitive_features=g) == pytest.approx(0.5)
    mf = fairness_frame(weighted_rows(confusions(y, p, g), ["only"]))
    eod = equalized_odds(mf)
    assert eod.loc["only", "hap"] == pytest.approx(0.5)
    # neutral one-vs-rest by hand: TPR F 7/8, M 6/8; FPR 0 for both -> 0.125
    assert eod.loc["only", "neu"] == pytest.approx(0.125)
    # WAR per gender by hand: F (3 + 7) / 12, M (1 + 6) / 12
    assert mf.by_group.loc[("only", "F"), "WAR"] == pytest.approx(10 / 12)
    assert mf.by_group.loc[("only", "M"), "WAR"] == pytest.approx(7 / 12)
    assert mf.difference().loc["only", "WAR"] == pytest.approx(3 / 12)


def test_weighted_metric_frame_equals_fairlearn_on_raw_predictions():
    rng = np.random.default_rng(5)
    n = 900
    y = rng.integers(0, 4, n)
    p = np.where(rng.random(n) < 0.55, y, rng.integers(0, 4, n))
    g = rng.choice(list(GENDERS), n)
    c = rng.integers(0, 3, n)
    eod = equalized_odds(fairness_frame(weighted_rows(confusions(y, p, g, c), ["a", "b", "c"])))
    for k, name in enumerate(["a", "b", "c"]):
        sel = c == k
        for e, code in enumerate(CLASSES):
            expected = equalized_odds_difference(y[sel] == e, p[sel] == e, sensitive_features=g[sel])
            assert eod.loc[name, code] == pytest.approx(expected, abs=1e-12)


def test_gap_interval_and_gap_change_on_simulated_speakers():
    # 10 female speakers right 70 % of the time, 10 male speakers 50 %: F-M gap 0.2
    rng = np.random.default_rng(11)
    strata = np.array(["F", "M"] * 10)
    spk = np.repeat(np.arange(20), 60)
    y = rng.integers(0, 4, len(spk))
    wrong = (y + rng.integers(1, 4, len(spk))) % 4
    acc = np.where(strata[spk] == "F", 0.7, 0.5)
    biased = stats.speaker_confusions(spk, y, np.where(rng.random(len(spk)) < acc, y, wrong), 20, 4)
    fair = stats.speaker_confusions(spk, y, np.where(rng.random(len(spk)) < 0.6, y, wrong), 20, 4)
    iv = gap_interval(biased, strata, "war", 1000, 0)
    assert (biased.sum(axis=(1, 2)) == 60).all()  # utterances per speaker
    assert iv.estimate == pytest.approx(
        np.trace(biased[strata == "F"].sum(0)) / 600 - np.trace(biased[strata == "M"].sum(0)) / 600
    )
    assert iv.low <= 0.2 <= iv.high and iv.low > 0.1
    change = gap_change(fair, biased, strata, "war", 1000, 0)
    assert change.estimate < 0 and change.excludes_zero()  # the fair system narrows the gap


@pytest.fixture(scope="module")
def report(sim_store, tmp_path_factory):
    _, main, _ = sim_store
    return write_bias_report(main, "sim", tmp_path_factory.mktemp("out"), n_boot=500)


def raw_predictions(tracker):
    runs = tracker.runs("cell", "FINISHED")
    blobs = tracker.read_artifacts(runs, "predictions.csv")
    return pd.concat([pd.read_csv(io.BytesIO(blobs[r.run_id])).assign(variant=r.params["variant"]) for r in runs]), runs


def test_bias_csv_against_logged_metrics_and_raw_predictions(report, sim_store):
    _, main, _ = sim_store
    frame = pd.read_csv(report.csv).set_index("variant")
    preds, runs = raw_predictions(main)
    for variant in ("emo-clap", "sl-gemo-clap", "ml-gemo-clap"):
        row = frame.loc[variant]
        logged = [r.metrics for r in runs if r.params["variant"] == variant]
        assert row["test_war_F_mean"] == pytest.approx(np.mean([m["test_war_F"] for m in logged]))
        assert row["gap_uar_folds"] == pytest.approx(np.mean([m["test_uar_F"] - m["test_uar_M"] for m in logged]))
        sub = preds[preds["variant"] == variant]
        ok = sub["emotion"] == sub["predicted"]
        assert row["gap_war"] == pytest.approx(ok[sub["gender"] == "F"].mean() - ok[sub["gender"] == "M"].mean())
        assert row["gap_war_low"] <= row["gap_war"] <= row["gap_war_high"]
        for e, code in enumerate(CLASSES):
            expected = equalized_odds_difference(
                sub["emotion"] == code, sub["predicted"] == code, sensitive_features=sub["gender"].to_numpy()
            )
            assert row[f"eod_{code}"] == pytest.approx(expected, abs=1e-12), (variant, code, e)
        female = sub[sub["gender"] == "F"]
        hap = female[female["emotion"] == "hap"]
        assert row["recall_hap_F"] == pytest.approx((hap["predicted"] == "hap").mean())
    conf = pd.read_csv(report.folder / "bias_confusion.csv")
    assert conf["count"].sum() == len(preds)
    assert pd.isna(frame.loc["emo-clap", "gap_uar_verdict"])  # the baseline itself
    assert frame.loc["sl-gemo-clap", "gap_uar_verdict"].split()[0] in {"narrows", "widens"}


def test_bias_markdown_figures_and_page(report):
    md = report.markdown.read_text()
    assert "- **data**: embedded corpus" in md and "simulated (tiny-wavlm)" in md
    assert "## Fairness metrics (fairlearn)" in md and "EOD happy" in md
    assert "tiny-wavlm: SL-GEmo-CLAP α=0.8: UAR gap" in md
    names = {p.name for p in report.figures}
    assert names == {"bias_gap.png", "bias_recall.png", "bias_confusion_tiny-wavlm.png", "bias_speakers.png"}
    for p in report.figures:
        assert p.stat().st_size < 400_000
    page = report.page.read_text()
    assert page.count("data:image/png;base64,") >= 3 and 'id="bias"' in page


def test_a_variant_that_removes_the_gap_narrows_it(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "gap")
    configs = [
        SimConfig("tiny-wavlm", "emo-clap", skill=0.5, gender_shift={"M": 0.25}),
        SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.62, gender_shift={}),
        SimConfig("tiny-wavlm", "ml-gemo-clap", 0.8, skill=0.45, gender_shift={"M": 0.45}),
    ]
    simulate_study(tracker, "gap", configs, per_speaker=100, seed_sd=0.0, speaker_sd=0.02)
    report = write_bias_report(tracker, "gap", tmp_path / "out", n_boot=500)
    frame = report.frame.set_index("variant")
    assert frame.loc["emo-clap", "gap_war"] < -0.15  # male speakers favoured by 25 points
    assert frame.loc["sl-gemo-clap", "gap_war_verdict"] == "narrows (interval excludes 0)"
    assert frame.loc["ml-gemo-clap", "gap_war_verdict"] == "widens (interval excludes 0)"
    assert "**narrows (interval excludes 0)**" in report.markdown.read_text()


def test_per_speaker_figures_against_raw_predictions(report, sim_store):
    _, main, _ = sim_store
    preds, _ = raw_predictions(main)
    speakers = pd.read_csv(report.folder / "bias_speakers.csv")
    frame = report.frame.set_index("variant")
    for variant in ("emo-clap", "sl-gemo-clap"):
        config = frame.loc[variant, "config"]
        mine = speakers[speakers["config"] == config].set_index("speaker")
        sub = preds[preds["variant"] == variant]
        assert set(mine.index) == set(sub["speaker"])
        by_gender = {g: [] for g in GENDERS}
        for speaker, s in sub.groupby("speaker"):
            recall = [(s.loc[s["emotion"] == c, "predicted"] == c).mean() for c in CLASSES if (s["emotion"] == c).any()]
            assert mine.loc[speaker, "uar"] == pytest.approx(np.mean(recall))
            assert mine.loc[speaker, "war"] == pytest.approx((s["emotion"] == s["predicted"]).mean())
            assert mine.loc[speaker, "n"] == len(s) and mine.loc[speaker, "gender"] == s["gender"].iloc[0]
            by_gender[s["gender"].iloc[0]].append(np.mean(recall))
        row = frame.loc[variant]
        f, m = np.array(by_gender["F"]), np.array(by_gender["M"])
        assert row["speaker_uar_F_std"] == pytest.approx(f.std(ddof=1))
        assert row["speaker_gap_uar"] == pytest.approx(f.mean() - m.mean())
        pooled = np.sqrt(((len(f) - 1) * f.var(ddof=1) + (len(m) - 1) * m.var(ddof=1)) / (len(f) + len(m) - 2))
        assert row["speaker_within_std"] == pytest.approx(pooled)
        assert row["lowest_speaker_uar"] == pytest.approx(min(list(f) + list(m)))
        assert mine.loc[row["lowest_speaker"], "uar"] == pytest.approx(row["lowest_speaker_uar"])
    assert "## Per speaker" in report.markdown.read_text()


@pytest.mark.parametrize(("speaker_sd", "shift", "sim_seed"), [(0.15, 0.0, 1), (0.01, 0.3, 0)])
def test_a_gap_smaller_than_the_spread_of_speakers_is_said(tmp_path, speaker_sd, shift, sim_seed):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "spk")
    configs = [SimConfig("tiny-wavlm", "emo-clap", skill=0.5, gender_shift={"M": shift})]
    simulate_study(tracker, "spk", configs, per_speaker=200, seed_sd=0.0, speaker_sd=speaker_sd, seed=sim_seed)
    report = write_bias_report(tracker, "spk", tmp_path / "out", n_boot=50)
    speakers = pd.read_csv(report.folder / "bias_speakers.csv")
    f, m = (speakers.loc[speakers["gender"] == g, "uar"].to_numpy() for g in GENDERS)
    within = np.sqrt((4 * f.var(ddof=1) + 4 * m.var(ddof=1)) / 8)  # 5 speakers per gender
    said = abs(f.mean() - m.mean()) < within
    # speakers that differ widely, no gender effect: said; a 30-point gender effect, alike speakers: not said
    assert said == (speaker_sd > 0.1)
    assert ("moves the figure more than which gender" in report.markdown.read_text()) == said
