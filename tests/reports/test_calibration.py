"""Calibration report on simulated studies of known calibration, against a slow per-utterance reference."""

import io
import math

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.records import CLASSES
from benchmark.reports.calibration import (
    BINS,
    VERDICTS,
    NoCalibrationError,
    chosen_scales,
    write_calibration_report,
)
from benchmark.reports.common import load_cells
from benchmark.reports.embeddings import ARTIFACT
from benchmark.reports.simulate import SIM_LOGIT_SCALE, SimConfig, simulate_study
from benchmark.tracking import Tracker

CONFIGS = [
    # accuracy 0.6 for both; confidence 0.9 for female speakers (over-confident), 0.6 for male (calibrated)
    SimConfig("tiny-wavlm", "emo-clap", skill=0.6, confidence={"F": 0.9, "M": 0.6}),
    # the other way round
    SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.6, confidence={"F": 0.6, "M": 0.9}),
    # calibrated for both
    SimConfig("tiny-wavlm", "ml-gemo-clap", 0.8, skill=0.6, confidence={"F": 0.6, "M": 0.6}),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}", "calib")
    simulate_study(tracker, "calib", CONFIGS, per_speaker=200, speaker_sd=0.0, seed_sd=0.0, seeds=(0, 1), epochs=2)
    return tracker, root


@pytest.fixture(scope="module")
def report(store):
    tracker, root = store
    return write_calibration_report(tracker, "calib", root / "out", n_boot=300)


# ---- slow reference --------------------------------------------------------------------------------------------


def reference_rows(tracker):
    """Every fold run's embeddings.npz read one by one and scored utterance by utterance in plain Python."""
    rows = []
    for run in tracker.runs("cell"):
        data = tracker.read_artifacts([run], ARTIFACT)[run.run_id]
        with np.load(io.BytesIO(data)) as z:
            audio, prompts = z["audio"].astype(float), z["prompts"].astype(float)
            genders, emotions, predicted = z["gender"].tolist(), z["emotion"].tolist(), z["predicted"].tolist()
            speakers = z["speaker"].tolist()
        for i in range(len(genders)):
            a = audio[i] / math.sqrt(sum(x * x for x in audio[i]))
            cos = []
            for p in prompts:
                p = p / math.sqrt(sum(x * x for x in p))
                cos.append(sum(x * y for x, y in zip(a, p, strict=True)))
            exps = [math.exp(SIM_LOGIT_SCALE * c) for c in cos]
            probs = [e / sum(exps) for e in exps]
            y, k = CLASSES.index(emotions[i]), CLASSES.index(predicted[i])
            rows.append(
                {
                    "run": run.run_id,
                    "variant": run.params["variant"],
                    "gender": genders[i],
                    "speaker": speakers[i],
                    "confidence": probs[k],
                    "correct": y == k,
                    "brier": sum((p - (j == y)) ** 2 for j, p in enumerate(probs)),
                    "nll": -math.log(probs[y]),
                }
            )
    return rows


def ref_ece(rows):
    total = 0.0
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        inside = [r for r in rows if lo < r["confidence"] <= hi or (b == 0 and r["confidence"] == 0)]
        if inside:
            acc = sum(r["correct"] for r in inside) / len(inside)
            conf = sum(r["confidence"] for r in inside) / len(inside)
            total += len(inside) * abs(acc - conf)
    return total / len(rows)


def test_measures_match_a_slow_per_utterance_reference(store, report):
    tracker, _ = store
    rows = reference_rows(tracker)
    runs = report.runs.set_index("run_id")
    assert len(runs) == 3 * 5 * 2 and not any(report.missing.values())
    for run_id in {r["run"] for r in rows}:
        mine = [r for r in rows if r["run"] == run_id]
        got = runs.loc[run_id]
        assert got["ece"] == pytest.approx(ref_ece(mine), abs=1e-9)
        assert got["brier"] == pytest.approx(sum(r["brier"] for r in mine) / len(mine), abs=1e-9)
        assert got["nll"] == pytest.approx(sum(r["nll"] for r in mine) / len(mine), abs=1e-9)
        for g in "FM":
            theirs = [r for r in mine if r["gender"] == g]
            assert got[f"ece_{g}"] == pytest.approx(ref_ece(theirs), abs=1e-9)
            over = sum(r["confidence"] - r["correct"] for r in theirs) / len(theirs)
            assert got[f"overconfidence_{g}"] == pytest.approx(over, abs=1e-9)
    frame = report.frame.set_index("variant")
    for variant in ("emo-clap", "sl-gemo-clap", "ml-gemo-clap"):
        pooled = [r for r in rows if r["variant"] == variant]
        row = frame.loc[variant]
        by = {g: [r for r in pooled if r["gender"] == g] for g in "FM"}
        assert row["n_pooled"] == len(pooled)
        for g in "FM":
            assert row[f"pooled_ece_{g}"] == pytest.approx(ref_ece(by[g]), abs=1e-9)
            assert row[f"pooled_brier_{g}"] == pytest.approx(sum(r["brier"] for r in by[g]) / len(by[g]), abs=1e-9)
        assert row["pooled_ece_gap"] == pytest.approx(ref_ece(by["F"]) - ref_ece(by["M"]), abs=1e-9)
        # fold means of the per-run figures, seeds averaged first
        per_run = report.runs[report.runs["variant"] == variant]
        assert row["ece_mean"] == pytest.approx(per_run.groupby("fold")["ece"].mean().mean(), abs=1e-12)


def test_verdicts_recover_the_simulated_calibration(report):
    frame = report.frame.set_index("variant")
    assert frame.loc["emo-clap", "verdict"] == VERDICTS[0]  # over-confident for female speakers
    assert frame.loc["sl-gemo-clap", "verdict"] == VERDICTS[1]
    assert frame.loc["ml-gemo-clap", "verdict"] == VERDICTS[2]
    # the truth: |0.9 - 0.6| = 0.3 of over-confidence for the over-confident gender, none for the calibrated one
    assert frame.loc["emo-clap", "pooled_overconfidence_F"] == pytest.approx(0.3, abs=0.03)
    assert frame.loc["emo-clap", "pooled_ece_F"] == pytest.approx(0.3, abs=0.03)
    assert abs(frame.loc["ml-gemo-clap", "pooled_overconfidence_gap"]) < 0.04
    # the male speakers' ECE is not exactly 0 (binning of a finite sample), so the gap sits a little below 0.3
    est, low, high = frame.loc["emo-clap", ["pooled_ece_gap", "pooled_ece_gap_low", "pooled_ece_gap_high"]]
    assert 0.2 < low <= est <= high and est == pytest.approx(0.3, abs=0.04)
    # ML-GEmo-CLAP is calibrated for both genders: its F−M gap is about 0.3 smaller than Emo-CLAP's in every fold
    by_measure = {(d.config, d.measure): d for d in report.differences}
    ml = frame.loc["ml-gemo-clap", "config"]
    assert by_measure[(ml, "abs_ece_gap")].test.mean_diff < -0.2
    assert by_measure[(ml, "abs_ece_gap")].reading == "F−M gap smaller"
    bins = report.reliability[frame.loc["emo-clap", "config"]]["F"]
    assert bins["n"].sum() == 5 * 2 * 200 and bins["confidence"].between(0.84, 0.96).all()
    md = report.markdown.read_text()
    assert "less reliable for female speakers" in md and "## Against Emo-CLAP" in md


def test_the_scale_of_the_chosen_epoch_is_used(store, tmp_path):
    # a fresh study whose runs log a different scale at each epoch, one of them choosing epoch 1
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "scales")
    simulate_study(tracker, "scales", CONFIGS[:1], per_speaker=20, folds=(1, 2), epochs=3)
    runs = sorted(tracker.runs("cell"), key=lambda r: r.run_id)
    for run in runs:
        tracker.log_steps(run.run_id, {1: {"logit_scale": 5.0}, 2: {"logit_scale": 7.0}, 3: {"logit_scale": 9.0}})
    tracker.log_metrics(runs[0].run_id, {"best_epoch": 1})
    cells = load_cells(tracker, "scales")
    assert chosen_scales(tracker, cells) == {runs[0].run_id: 5.0, runs[1].run_id: 9.0}
    report = write_calibration_report(tracker, "scales", tmp_path / "out", n_boot=50)
    assert report.runs.set_index("run_id").loc[runs[0].run_id, "logit_scale"] == 5.0


def test_a_study_without_embeddings_is_one_error_and_writes_nothing(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "plain")
    simulate_study(tracker, "plain", [SimConfig("tiny-wavlm", "emo-clap")], per_speaker=20)
    with pytest.raises(NoCalibrationError, match=r"study 'plain': none of its 5 finished fold runs has both"):
        write_calibration_report(tracker, "plain", tmp_path / "out", n_boot=50)
    assert not (tmp_path / "out").exists()


def test_the_command_and_report_all(store, tmp_path, capsys):
    _, root = store
    study = tmp_path / "calib.toml"
    study.write_text(
        f'name = "calib"\n[encoders]\naudio = ["tiny-wavlm"]\ntext = "tiny-roberta"\n'
        f'[tracking]\nuri = "sqlite:///{root / "mlflow.db"}"\n'
    )
    out = tmp_path / "out"
    assert main(["report", "calibration", str(study), "--out", str(out), "--n-boot", "100"]) == 0
    printed = capsys.readouterr().out
    assert "## Per gender, pooled over folds" in printed
    files = {p.name for p in (out / "calib").iterdir()}
    assert files >= {"calibration.md", "calibration.csv", "calibration_runs.csv", "calibration.png"}
    assert "calibration_tiny-wavlm.png" in files
    assert "Calibration" in (out / "calib" / "index.html").read_text()
    assert main(["report", "all", str(study), "--out", str(tmp_path / "all"), "--n-boot", "50"]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "all" / "calib" / "calibration.md") in printed and "calibration: skipped" not in printed
