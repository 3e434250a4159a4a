"""The cross-corpus report reads the xc_ metric contract from a real store of simulated runs."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.reports.common import load_cells
from benchmark.reports.cross_corpus import (
    NoCrossCorpusError,
    corpora_of,
    listed_corpora,
    write_cross_corpus_report,
)
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker

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


def test_corpora_are_discovered_from_metric_names():
    names = ["test_war", "xc_ravdess_war", "xc_ravdess_uar_F", "xc_crema_d_uar", "xc_crema_d_n", "xc_emodb_n", "lr"]
    assert corpora_of(names) == ["crema_d", "ravdess"]  # emodb logged only a count: not a corpus result
    assert corpora_of(names, listed=["ravdess", "emodb"]) == ["ravdess", "crema_d"]


@pytest.fixture(scope="module")
def report(sim_store, tmp_path_factory):
    _, main_tracker, _ = sim_store
    return write_cross_corpus_report(main_tracker, "sim", tmp_path_factory.mktemp("out"))


def test_means_gaps_and_intervals_from_the_logged_metrics(report, sim_store):
    _, tracker, _ = sim_store
    assert report.corpora == ("ravdess", "crema_d")  # data.eval_corpora order
    frame = pd.read_csv(report.csv)
    runs = tracker.runs("cell", "FINISHED")
    for variant in ("emo-clap", "sl-gemo-clap"):
        logged = [r.metrics for r in runs if r.params["variant"] == variant]
        row = frame[(frame["variant"] == variant) & (frame["corpus"] == "crema_d")].iloc[0]
        uar = [m["xc_crema_d_uar"] for m in logged]
        assert row["uar_mean"] == pytest.approx(np.mean(uar))
        assert row["uar_std"] == pytest.approx(np.std(uar, ddof=1))
        assert row["n"] == 80  # 4 speakers x 20 utterances
        gaps = np.array([m["xc_crema_d_war_F"] - m["xc_crema_d_war_M"] for m in logged])
        half = 2.776445 * gaps.std(ddof=1) / math.sqrt(5)  # t(0.975, df 4)
        assert row["gap_war"] == pytest.approx(gaps.mean())
        assert (row["gap_war_low"], row["gap_war_high"]) == pytest.approx((gaps.mean() - half, gaps.mean() + half))
        drop = np.mean([m["xc_crema_d_uar"] - m["test_uar"] for m in logged])
        assert row["uar_drop"] == pytest.approx(drop)
        own = frame[(frame["variant"] == variant) & (frame["corpus"] == "in-corpus")].iloc[0]
        assert own["uar_mean"] == pytest.approx(np.mean([m["test_uar"] for m in logged]))
    sl = frame[(frame["variant"] == "sl-gemo-clap") & (frame["corpus"] == "ravdess")].iloc[0]
    emo = [
        r.metrics["xc_ravdess_uar"]
        for r in sorted(runs, key=lambda r: r.params["fold"])
        if r.params["variant"] == "emo-clap"
    ]
    mine = [
        r.metrics["xc_ravdess_uar"]
        for r in sorted(runs, key=lambda r: r.params["fold"])
        if r.params["variant"] == "sl-gemo-clap"
    ]
    assert sl["uar_vs_emo"] == pytest.approx(np.mean(np.subtract(mine, emo)))


def test_markdown_and_figure(report):
    md = report.markdown.read_text()
    assert "- **data**: embedded corpus" in md and "simulated (tiny-wavlm)" in md
    assert "RAVDESS (`xc_ravdess_*`, 120 utterances)" in md and "crema_d (`xc_crema_d_*`, 80 utterances)" in md
    assert "| SL-GEmo-CLAP α=0.8 | RAVDESS |" in md
    assert report.figures[0].name == "cross_corpus.png" and report.figures[0].stat().st_size < 400_000
    assert 'id="cross_corpus"' in report.page.read_text()


def test_listed_but_unlogged_corpora_are_named(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "listed")
    cfgs = [SimConfig("tiny-wavlm", "emo-clap"), SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8)]
    simulate_study(
        tracker,
        "listed",
        cfgs,
        folds=(1, 2),
        per_speaker=10,
        eval_corpora={"ravdess": (4, 5)},
        data={"eval_corpora": '["ravdess", "emodb"]'},
    )
    assert listed_corpora(load_cells(tracker, "listed")) == ["ravdess", "emodb"]
    report = write_cross_corpus_report(tracker, "listed", tmp_path / "out")
    assert report.corpora == ("ravdess",)
    assert "Listed in data.eval_corpora but never logged: emodb" in report.markdown.read_text()


def test_a_study_without_cross_corpus_metrics_is_one_clear_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "plain")
    simulate_study(tracker, "plain", [SimConfig("tiny-wavlm", "emo-clap")], folds=(1, 2), per_speaker=10)
    with pytest.raises(NoCrossCorpusError, match="none of its 2 finished fold runs logged cross-corpus metrics"):
        write_cross_corpus_report(tracker, "plain", tmp_path / "out")
    study = tmp_path / "plain.toml"
    study.write_text(STUDY.format(name="plain", uri=uri))
    capsys.readouterr()  # MLflow's store creation above logs to stderr
    code = main(["report", "cross-corpus", str(study), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("gemo-bench: error: study 'plain': none of its 2 finished fold runs")
    assert "data.eval_corpora" in err[0]
    assert not (tmp_path / "out" / "plain" / "cross_corpus.md").exists()
    assert not Path(tmp_path / "out" / "plain").exists() or not any((tmp_path / "out" / "plain").iterdir())
