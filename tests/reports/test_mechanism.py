"""The mechanism report: study pairing rules, gains and their contrast on simulated main/control studies."""

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.reports import stats
from benchmark.reports.ablation import Comparison
from benchmark.reports.mechanism import Contrast, MechanismPairError, check_pair, write_mechanism_report
from benchmark.studies import load_study

PAIR = """
name = "{name}"
[data]
corpus = "embedded"
size = 200
control = {control}
[encoders]
audio = ["tiny-wavlm"]
text = "tiny-roberta"
[method]
alphas = [{alpha}]
[tracking]
uri = "{uri}"
"""


def write_pair(tmp_path, uri="", alpha=0.8, control=True, name="sim_control"):
    main_path = tmp_path / "sim.toml"
    ctrl_path = tmp_path / "sim_control.toml"
    main_path.write_text(PAIR.format(name="sim", control="false", alpha=0.8, uri=uri))
    ctrl_path.write_text(PAIR.format(name=name, control=str(control).lower(), alpha=alpha, uri=uri))
    return main_path, ctrl_path


def test_shipped_mechanism_studies_are_a_valid_pair():
    study, control = load_study("studies/mechanism.toml"), load_study("studies/mechanism_control.toml")
    check_pair(study, control)
    assert not study.data.control and control.data.control
    assert study.data.corpus == control.data.corpus == "embedded"
    assert len(study.cells()) == len(control.cells())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alpha": 0.5}, "method.alphas: the two studies must run the same grid"),
        ({"control": False}, "data.control: expected false in"),
        ({"name": "sim"}, "both studies log to experiment 'sim'"),
    ],
)
def test_a_mismatched_pair_is_one_clear_error(tmp_path, change, message):
    a, b = write_pair(tmp_path, **change)
    with pytest.raises(MechanismPairError, match=message):
        check_pair(load_study(a), load_study(b))


@pytest.fixture(scope="module")
def report(sim_store, tmp_path_factory):
    _, main_tracker, control = sim_store
    return write_mechanism_report(
        main_tracker, control, "sim", "sim_control", tmp_path_factory.mktemp("out"), n_boot=1000
    )


def test_gains_and_their_difference_against_the_logged_metrics(report, sim_store):
    _, main_tracker, control = sim_store

    def gains(tracker, variant):
        runs = tracker.runs("cell", "FINISHED")
        by = {(r.params["variant"], int(r.params["fold"])): r.metrics["test_uar"] for r in runs}
        return np.array([by[(variant, f)] - by[("emo-clap", f)] for f in range(1, 6)])

    frame = pd.read_csv(report.csv).set_index(["configuration", "metric"])
    row = frame.loc[("SL-GEmo-CLAP α=0.8", "uar")]
    gm, gc = gains(main_tracker, "sl-gemo-clap"), gains(control, "sl-gemo-clap")
    assert row["main_gain"] == pytest.approx(gm.mean()) and row["control_gain"] == pytest.approx(gc.mean())
    d = gm - gc
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert row["difference"] == pytest.approx(d.mean())
    # the report's difference test is the paired t over folds of the two gains
    result = {c.label + c.metric: c for c in report.contrasts}["SL-GEmo-CLAP α=0.8uar"]
    assert result.test.t == pytest.approx(t_hand)
    # simulated: SL gains 11-15 points on the main study and nothing on the control
    assert row["main_significant"] and not row["control_significant"]
    assert row["main_low"] > 0 and row["control_low"] <= 0 <= row["control_high"]
    assert row["difference_boot"] == pytest.approx(row["main_boot"] - row["control_boot"])
    assert row["verdict"] == "gain on the gender-relative corpus, none on the control: as the mechanism predicts"
    ml = frame.loc[("ML-GEmo-CLAP α=0.8", "uar")]
    assert (
        ml["verdict"] == "no significant difference to Emo-CLAP on either corpus: no evidence either way at this size"
    )


def test_markdown_names_both_corpora_and_the_verdict(report):
    md = report.markdown.read_text()
    assert "data.control = true" in md and "`sim_control`" in md
    assert "In UAR, 1 of 2 gender-aware configurations show the pattern the hypothesis predicts" in md
    assert report.figures[0].name == "mechanism.png"
    assert 'id="mechanism"' in report.page.read_text()


def test_cli_finds_the_control_twin_beside_the_study(tmp_path, sim_store, capsys):
    uri, _, _ = sim_store
    study, _ = write_pair(tmp_path, uri=uri)
    capsys.readouterr()
    assert main(["report", "mechanism", str(study), "--out", str(tmp_path / "out"), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "sim: mechanism" in out and (tmp_path / "out" / "sim" / "mechanism.md").exists()


def _comparison(diff, significant):
    p = 0.01 if significant else 0.5
    low, high = (diff - 0.01, diff + 0.01) if significant else (diff - 0.1, diff + 0.1)
    test = stats.PairedTest(5, diff, 3.0, p, 0.0, 0.0625)
    return Comparison("c", "b", "uar", test, stats.Interval(diff, low, high, 0.95, np.array([diff])))


@pytest.mark.parametrize(
    ("main_gain", "main_sig", "ctrl_gain", "ctrl_sig", "verdict"),
    [
        (0.05, True, 0.0, False, "as the mechanism predicts"),
        (0.05, True, 0.04, True, "but also a gain on the control: not specific to gender-relative cues"),
        (-0.2, True, -0.2, True, "worse than Emo-CLAP on both corpora"),
        (-0.2, True, 0.0, False, "on the gender-relative corpus only: against the mechanism"),
        (0.01, False, 0.05, True, "a significant gain on the control"),
        (0.01, False, 0.0, False, "no evidence either way"),
    ],
)
def test_verdicts(main_gain, main_sig, ctrl_gain, ctrl_sig, verdict):
    c = Contrast("x", "enc", "uar", _comparison(main_gain, main_sig), _comparison(ctrl_gain, ctrl_sig), None, None)
    assert verdict in c.verdict


def test_report_all_writes_every_report_and_the_twin(tmp_path, sim_store, capsys):
    uri, _, _ = sim_store
    study, _ = write_pair(tmp_path, uri=uri)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["report", "all", str(study), "--out", str(out), "--n-boot", "100"]) == 0
    printed = capsys.readouterr().out
    names = [
        "table.md",
        "claims.md",
        "ablation.md",
        "bias.md",
        "embeddings.md",
        "calibration.md",
        "curves.md",
        "cross_corpus.md",
        "mechanism.md",
    ]
    assert all((out / "sim" / n).is_file() for n in names)
    assert "wrote " + ", ".join(str(out / "sim" / n) for n in names) in printed
    # its predictions carry no label agreement: that report says why it is left out
    assert "agreement: skipped (study 'sim': none of the test predictions" in printed
    assert not (out / "sim" / "agreement.md").exists()
    page = (out / "sim" / "index.html").read_text()
    assert all(
        f'id="{n.removesuffix(".md")}"' in page
        for n in ("table", "claims", "ablation", "bias", "embeddings", "curves", "mechanism")
    )
