"""The claims report on real MLflow stores of simulated studies, every verdict's figures recomputed by hand.

The IEMOCAP-like store is logged as IEMOCAP runs of pre-trained checkpoints (simulated, so the truth is known):
- WavLM: SL-GEmo-CLAP at α_e 0.5 and 0.9 (0.9 the better), ML-GEmo-CLAP equal to Emo-CLAP;
- HuBERT: SL-GEmo-CLAP 15 points better than Emo-CLAP, ML-GEmo-CLAP 15 points worse;
- wav2vec 2.0: SL-GEmo-CLAP at α_e 0.5 far better than at 0.9.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_1samp, ttest_rel

from benchmark.cli import main
from benchmark.reports import stats
from benchmark.reports.claims import figure_verdict, write_claims_report
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.studies import Paper
from benchmark.tracking import Tracker

CONFIGS = [
    SimConfig("wavlm-base-plus", "emo-clap", skill=0.72),
    SimConfig("wavlm-base-plus", "sl-gemo-clap", 0.5, skill=0.74),
    SimConfig("wavlm-base-plus", "sl-gemo-clap", 0.9, skill=0.82),
    SimConfig("wavlm-base-plus", "ml-gemo-clap", 0.9, skill=0.72),
    SimConfig("hubert-base", "emo-clap", skill=0.6),
    SimConfig("hubert-base", "sl-gemo-clap", 0.8, skill=0.75),
    SimConfig("hubert-base", "ml-gemo-clap", 0.8, skill=0.45),
    SimConfig("wav2vec2-base", "emo-clap", skill=0.6),
    SimConfig("wav2vec2-base", "sl-gemo-clap", 0.5, skill=0.85),
    SimConfig("wav2vec2-base", "sl-gemo-clap", 0.9, skill=0.6),
]
ENCODERS = ["wavlm-base-plus", "hubert-base", "wav2vec2-base"]


@pytest.fixture(scope="module")
def iemocap_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}", "claims")
    simulate_study(
        tracker,
        "claims",
        CONFIGS,
        per_speaker=60,
        seed_sd=0.0,
        data={"kind": "iemocap"},
        weights="pretrained",
        epochs=2,
    )
    return root, tracker


@pytest.fixture(scope="module")
def report(iemocap_store):
    root, tracker = iemocap_store
    return write_claims_report(tracker, "claims", root / "out", encoders=ENCODERS, n_boot=400)


def fold_metric(tracker: Tracker, encoder: str, variant: str, alpha: float, metric: str) -> list[float]:
    """``test_<metric>`` per fold, read from the raw runs (one seed)."""
    runs = [
        r
        for r in tracker.runs("cell", "FINISHED")
        if r.params["audio_encoder"] == encoder and r.params["variant"] == variant and float(r.params["alpha"]) == alpha
    ]
    return [r.metrics[f"test_{metric}"] for r in sorted(runs, key=lambda r: int(r.params["fold"]))]


def test_headline_figure_is_judged_by_a_t_interval_over_folds(report, iemocap_store):
    _, tracker = iemocap_store
    assert report.scope.reproduction and report.scope.reasons == ()
    frame = pd.read_csv(report.csv)
    c1 = frame[frame["claim"] == "C1"].set_index("metric")
    # only WavLM has a paper figure; its SL configuration chosen by validation is α = 0.9
    assert set(frame.loc[frame["claim"] == "C1", "encoder"]) == {"wavlm-base-plus"}
    assert set(c1["configuration"]) == {"SL-GEmo-CLAP α=0.9"}
    positions = []
    for metric, paper in (("war", 83.16), ("uar", 81.43)):
        values = fold_metric(tracker, "wavlm-base-plus", "sl-gemo-clap", 0.9, metric)
        res = ttest_1samp(values, paper / 100)
        low, high = res.confidence_interval(0.95)
        row = c1.loc[metric]
        assert row["ours"] == pytest.approx(np.mean(values))
        assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))
        assert row["p_t"] == pytest.approx(res.pvalue)
        assert row["paper"] == pytest.approx(paper / 100)
        positions.append("below" if high < paper / 100 else "above" if low > paper / 100 else "inside")
    expected = (
        "consistent"
        if positions == ["inside", "inside"]
        else "below the paper"
        if set(positions) <= {"inside", "below"}
        else "above the paper"
        if set(positions) <= {"inside", "above"}
        else "mixed"
    )
    assert set(c1["verdict"]) == {expected}
    assert report.verdicts["C1"] == f"{expected} (wavlm-base-plus SL-GEmo-CLAP α=0.9)"


def test_a_studys_paper_table_has_every_reported_figure_checked(iemocap_store, tmp_path):
    _, tracker = iemocap_store
    # a family's figure applies to each of its encoders; an encoder named exactly wins over its family
    paper = Paper(
        results={
            "wavlm/emo-clap": (72.0, 72.0),
            "hubert/sl-gemo-clap": (1.0, 1.0),
            "hubert-base/sl-gemo-clap": (99, 99),
        },
        source="Table 2",
    )
    report = write_claims_report(tracker, "claims", tmp_path / "out", encoders=ENCODERS, n_boot=100, paper=paper)
    checked = {(c.encoder, c.variant, c.metric): c for c in report.figure_checks}
    assert sorted({k[:2] for k in checked}) == [("hubert-base", "sl-gemo-clap"), ("wavlm-base-plus", "emo-clap")]
    assert checked["hubert-base", "sl-gemo-clap", "uar"].paper == pytest.approx(0.99)
    assert checked["hubert-base", "sl-gemo-clap", "war"].position == "below"
    wavlm = [checked["wavlm-base-plus", "emo-clap", m] for m in ("war", "uar")]
    for c, metric in zip(wavlm, ("war", "uar"), strict=True):
        values = fold_metric(tracker, "wavlm-base-plus", "emo-clap", 1.0, metric)
        low, high = ttest_1samp(values, 0.72).confidence_interval(0.95)
        assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
    wavlm_verdict = figure_verdict(wavlm, report.scope)
    # tallied in report order: WavLM's Emo-CLAP, then HuBERT's SL-GEmo-CLAP
    if wavlm_verdict == "below the paper":
        assert report.verdicts["C1"] == "below the paper (2 of 2)"
    else:
        assert report.verdicts["C1"] == f"{wavlm_verdict} (1 of 2), below the paper (1 of 2)"
    text = report.markdown.read_text()
    assert "| C1 | the paper's 3 reported figures on IEMOCAP (WAR and UAR) | Table 2 |" in text
    assert "The paper's figures: Table 2." in text


def test_direction_verdicts_follow_the_paired_tests(report, iemocap_store):
    _, tracker = iemocap_store
    frame = pd.read_csv(report.csv)
    c2 = frame[frame["claim"] == "C2"]
    checks = {(d.encoder, d.variant): d for d in report.direction_checks}
    # every encoder with Emo-CLAP and a gender-aware variant: 2 + 2 + 1
    pairs = [(e, v) for e in ENCODERS[:2] for v in ("sl-gemo-clap", "ml-gemo-clap")]
    assert sorted(checks) == sorted([*pairs, ("wav2vec2-base", "sl-gemo-clap")])
    alphas = {("wavlm-base-plus", "sl-gemo-clap"): 0.9, ("wav2vec2-base", "sl-gemo-clap"): 0.5}
    for (encoder, variant), d in checks.items():
        alpha = alphas.get((encoder, variant), 0.9 if encoder == "wavlm-base-plus" else 0.8)
        rows = c2[(c2["encoder"] == encoder) & (c2["configuration"].str.contains(f"α={alpha:g}"))]
        rows = rows[rows["configuration"].str.startswith({"sl-gemo-clap": "SL", "ml-gemo-clap": "ML"}[variant])]
        assert len(rows) == 2
        significant = {}
        for metric in ("war", "uar"):
            a = fold_metric(tracker, encoder, variant, alpha, metric)
            b = fold_metric(tracker, encoder, "emo-clap", 1.0, metric)
            row = rows[rows["metric"] == metric].iloc[0]
            assert row["diff"] == pytest.approx(np.mean(np.subtract(a, b)))
            assert row["p_t"] == pytest.approx(ttest_rel(a, b).pvalue)
            d_sd = np.std(np.subtract(a, b), ddof=1)
            assert row["detectable_diff"] == pytest.approx(stats.paired_mde(d_sd, 5))
            assert row["significant"] == (row["p_t"] < 0.05 and (row["low"] > 0 or row["high"] < 0))
            significant[metric] = (row["significant"], row["diff"])
        if any(sig and diff < 0 for sig, diff in significant.values()):
            expected = "contradicted"
        elif all(sig and diff > 0 for sig, diff in significant.values()):
            expected = "supported"
        elif all(diff > 0 for _, diff in significant.values()):
            expected = "direction only"
        else:
            expected = "not supported"
        assert d.verdict == expected and set(rows["verdict"]) == {expected}
    # 15 points either way is found
    assert checks["hubert-base", "sl-gemo-clap"].verdict == "supported"
    assert checks["hubert-base", "ml-gemo-clap"].verdict == "contradicted"
    assert report.verdicts["C2"].startswith("contradicted (") and report.verdicts["C2"].endswith("of 5)")


def test_alpha_range_checked_where_alpha_varies(report, iemocap_store):
    _, tracker = iemocap_store
    checks = {a.encoder: a for a in report.alpha_checks}
    # WavLM chose 0.9 by validation; HuBERT has one alpha; wav2vec 2.0 chose 0.5, and 0.9 is 25 points worse
    assert checks["wavlm-base-plus"].chosen_alpha == 0.9 and checks["wavlm-base-plus"].verdict == "consistent"
    assert checks["hubert-base"].verdict == "not testable (one α_e)"
    w2v = checks["wav2vec2-base"]
    assert w2v.chosen_alpha == 0.5 and w2v.alphas == (0.5, 0.9)
    a = fold_metric(tracker, "wav2vec2-base", "sl-gemo-clap", 0.9, "uar")
    b = fold_metric(tracker, "wav2vec2-base", "sl-gemo-clap", 0.5, "uar")
    assert w2v.comparison.test.mean_diff == pytest.approx(np.mean(np.subtract(a, b)))
    assert w2v.comparison.test.p_t == pytest.approx(ttest_rel(a, b).pvalue)
    assert w2v.verdict == "not supported"
    assert report.verdicts["C3"] == "not supported (1 of 2 checks)"
    text = report.markdown.read_text()
    assert "**Scope: a reproduction.**" in text and "![claims.png](claims.png)" in text
    assert report.figures[0].is_file() and report.page.is_file()
    assert 'id="claims"' in report.page.read_text()


def test_the_checked_configuration_is_chosen_on_validation_not_test(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "pick")
    configs = [
        SimConfig("wavlm-base-plus", "emo-clap", skill=0.6),
        SimConfig("wavlm-base-plus", "sl-gemo-clap", 0.5, skill=0.6),
        SimConfig("wavlm-base-plus", "sl-gemo-clap", 0.9, skill=0.8),
    ]
    simulate_study(tracker, "pick", configs, per_speaker=20, seed_sd=0.0, epochs=1)
    # α = 0.5, the worse on test, had the better validation UAR at its chosen epoch in every fold
    for r in tracker.runs("cell", "FINISHED"):
        if r.params["alpha"] == "0.5":
            tracker.log_metrics(r.run_id, {"val_uar": 0.99}, step=int(r.metrics["best_epoch"]))
    report = write_claims_report(tracker, "pick", tmp_path / "out", n_boot=50)
    assert [c.config for c in report.figure_checks] == ["wavlm-base-plus | SL-GEmo-CLAP α=0.5"] * 2
    assert report.alpha_checks[0].chosen_alpha == 0.5
    # and the report says which configurations were scored on test for want of a history: none here
    assert "scored by test UAR" not in report.markdown.read_text()


def test_runs_without_validation_history_fall_back_to_test_and_say_so(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "nohist")
    configs = [
        SimConfig("wavlm-base-plus", "emo-clap", skill=0.6),
        SimConfig("wavlm-base-plus", "sl-gemo-clap", 0.5, skill=0.8),
        SimConfig("wavlm-base-plus", "sl-gemo-clap", 0.9, skill=0.6),
    ]
    simulate_study(tracker, "nohist", configs, per_speaker=20, seed_sd=0.0, epochs=0)
    report = write_claims_report(tracker, "nohist", tmp_path / "out", n_boot=50)
    assert report.alpha_checks[0].chosen_alpha == 0.5
    text = report.markdown.read_text()
    assert "No validation history was logged for" in text and "scored by test UAR, which flatters them" in text
    assert "**SL-GEmo-CLAP α=0.5**" in text


def test_embedded_runs_are_not_judged_against_the_paper(sim_store, tmp_path):
    _, tracker, _ = sim_store
    report = write_claims_report(tracker, "sim", tmp_path / "out", n_boot=200)
    assert not report.scope.reproduction
    assert any("embedded" in r and "not IEMOCAP" in r for r in report.scope.reasons)
    assert any(r.startswith("weights: simulated") for r in report.scope.reasons)
    # C1's figures are there, its verdict is not given; C2 is still checked on this data
    assert report.figure_checks and report.verdicts["C1"] == "not testable (not the paper's setting)"
    assert {c.variant: c.verdict for c in report.direction_checks}["sl-gemo-clap"] == "supported"
    assert report.verdicts["C3"] == "not testable (one α_e)"
    text = report.markdown.read_text()
    assert "**Scope: not the paper's setting**" in text and "says nothing about the paper's numbers" in text


def test_claims_command(iemocap_store, tmp_path, capsys):
    root, _ = iemocap_store
    study = tmp_path / "claims.toml"
    study.write_text(
        'name = "claims"\n[encoders]\naudio = ["wavlm-base-plus"]\ntext = "roberta-base"\n'
        f'[tracking]\nuri = "sqlite:///{root / "mlflow.db"}"\n'
        '[paper]\nsource = "Table 2"\n[paper.results]\n"hubert/emo-clap" = [61.5, 60.5]\n'
    )
    assert main(["report", "claims", str(study), "--out", str(tmp_path / "out"), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out' / 'claims' / 'claims.md'}" in out and "| C2 |" in out
    # the study's [paper] table reaches both reports
    assert "The paper's figures: Table 2." in out and "| hubert-base | Emo-CLAP | 5 |" in out
    frame = pd.read_csv(tmp_path / "out" / "claims" / "claims.csv")
    assert frame.loc[frame["claim"] == "C1", "paper"].tolist() == [0.615, 0.605]
    assert main(["report", "table", str(study), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "*Paper*: the paper's figures (Table 2)" in out and "| 61.50 | 60.50 |" in out


def test_a_study_without_gender_aware_runs_has_nothing_to_judge(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "only")
    simulate_study(tracker, "only", [SimConfig("wavlm-base-plus", "emo-clap")], per_speaker=10, weights="pretrained")
    report = write_claims_report(tracker, "only", tmp_path / "out", n_boot=50)
    assert report.verdicts == {
        "C1": "not testable (no runs of an encoder and variant the paper reports)",
        "C2": "not testable",
        "C3": "not testable (no SL-GEmo-CLAP runs)",
    }
    assert report.figures == () and not (report.folder / "claims.png").exists()
    text = report.markdown.read_text()
    assert "No encoder has both Emo-CLAP and a gender-aware variant" in text and "No SL-GEmo-CLAP runs" in text


def test_alpha_verdicts_over_encoders():
    from benchmark.reports.ablation import Comparison
    from benchmark.reports.claims import AlphaCheck, alpha_verdict

    def check(encoder, chosen_alpha, diff=None, p=None):
        comp = None
        if diff is not None:
            test = stats.PairedTest(5, diff, -2.0, p, 1.0, 0.1)
            boot = stats.Interval(diff, diff - 0.02, min(diff + 0.02, -0.001), 0.95, np.zeros(1))
            comp = Comparison("in", "chosen", "uar", test, boot)
        return AlphaCheck(encoder, (0.5, 0.9), "chosen", chosen_alpha, "in", comp)

    in_range = check("a", 0.9)
    near = check("b", 0.5, diff=-0.01, p=0.3)  # in range 1 point worse, not significantly
    worse = check("c", 0.5, diff=-0.05, p=0.01)  # significantly worse, and the interval excludes 0
    assert [c.verdict for c in (in_range, near, worse)] == ["consistent", "consistent within noise", "not supported"]
    assert alpha_verdict([in_range]) == "consistent (1 of 1 checks chose α_e in range)"
    assert alpha_verdict([in_range, near]) == "consistent (1 of 2 checks chose α_e in range; 1 within noise of it)"
    assert alpha_verdict([in_range, near, worse]) == "not supported (1 of 3 checks)"
    assert alpha_verdict([]) == "not testable (no SL-GEmo-CLAP runs)"


def test_searched_alpha_verdicts():
    from benchmark.reports.claims import SearchedAlpha

    def verdict(*trials):
        return SearchedAlpha("enc", trials).verdict

    assert verdict((0.85, 0.60), (0.3, 0.55)) == "consistent"
    assert verdict((0.3, 0.61), (0.9, 0.602)) == "consistent within noise"  # 0.8 points behind
    assert verdict((0.3, 0.63), (0.9, 0.602)) == "not supported"  # 2.8 points behind
    assert verdict((0.3, 0.61), (0.5, 0.55)) == "not testable (no trial with α_e in 0.8–0.9)"
    assert verdict((0.85, 0.61)) == "not testable (fewer than 2 complete trials)"
    assert SearchedAlpha("enc", ((0.3, 0.63), (0.9, 0.602), (0.81, 0.6))).gap == pytest.approx(0.028)


def test_the_studys_alpha_search_is_evidence_for_c3(tmp_path, capsys):
    """The search report's SL-GEmo-CLAP search in its real journal, beside simulated runs of the same study."""
    import optuna

    from benchmark.search_store import open_storage, storage_url, targets
    from benchmark.studies import load_study
    from tests.reports.test_searches import EMO, SL, STUDY, add_trials

    path = tmp_path / "srep.toml"
    path.write_text(STUDY.format(trials=12, root=tmp_path))
    study = load_study(path)
    storage = open_storage(study.search, storage_url(study))
    emo, sl = targets(study)
    add_trials(optuna.create_study(storage=storage, study_name=emo.study_name, direction="maximize"), EMO)
    add_trials(optuna.create_study(storage=storage, study_name=sl.study_name, direction="maximize"), SL)
    tracker = Tracker(study.tracking.uri, "srep")
    configs = [SimConfig("tiny-wavlm", "emo-clap", skill=0.6), SimConfig("tiny-wavlm", "sl-gemo-clap", 0.9, skill=0.6)]
    simulate_study(tracker, "srep", configs, per_speaker=10)
    assert main(["report", "claims", str(path), "--out", str(tmp_path / "out"), "--n-boot", "50"]) == 0
    capsys.readouterr()
    # by hand from SL's rows: the best complete trial has alpha 0.99 (0.610); in 0.8-0.9 the best is 0.9 (0.605)
    complete = [(r[1], r[4]) for r in SL if r[0] == "COMPLETE"]
    best = max(complete, key=lambda t: t[1])
    in_range = max((t for t in complete if 0.8 <= t[0] <= 0.9), key=lambda t: t[1])
    assert (best, in_range) == ((0.99, 0.610), (0.90, 0.605))
    frame = pd.read_csv(tmp_path / "out" / "srep" / "claims.csv")
    row = frame[(frame["claim"] == "C3") & (frame["configuration"] == "Optuna search")].iloc[0]
    assert row["trials"] == len(complete) and row["chosen_alpha"] == pytest.approx(0.99)
    assert row["diff"] == pytest.approx(in_range[1] - best[1])
    assert row["verdict"] == "consistent within noise"  # half a point behind: inside the near-best region
    text = (tmp_path / "out" / "srep" / "claims.md").read_text()
    row_md = f"| tiny-wavlm | {len(complete)} | 0.99 (61.00) | 0.9 (60.50) | 0.50 | **consistent within noise** |"
    assert row_md in text
    # the grid has one alpha (not testable); the search decides
    assert "| C3 |" in text and "**consistent (0 of 1 checks chose α_e in range; 1 within noise of it)**" in text


def test_near_best_is_the_search_reports():
    from benchmark.reports import claims, searches

    assert claims.NEAR_BEST == searches.NEAR_BEST
