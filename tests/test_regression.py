"""The regression check: comparison logic by hand, and the real command on a small study."""

import json

import pytest

from benchmark import regression
from benchmark.cli import main

KEY = ("tiny-wavlm", "sl-gemo-clap", 0.8, "", 0, 1)
OTHER = ("tiny-wavlm", "emo-clap", 1.0, "", 0, 1)
TOL = {"war": 0.02, "uar": 0.02}


def test_within_tolerance_passes_and_moved_metric_fails():
    base = {KEY: {"war": 0.5, "uar": 0.4}, OTHER: {"war": 0.3, "uar": 0.3}}
    same = regression.compare({KEY: {"war": 0.51, "uar": 0.4}, OTHER: {"war": 0.3, "uar": 0.3}}, base, TOL)
    assert same.ok
    moved = regression.compare({KEY: {"war": 0.45, "uar": 0.4}, OTHER: {"war": 0.3, "uar": 0.3}}, base, TOL)
    assert not moved.ok
    [row] = moved.failures
    assert row.key == KEY and row.metric == "war" and row.delta == pytest.approx(-0.05)
    table = regression.format_table(moved)
    assert "tiny-wavlm sl-gemo-clap a=0.8 seed 0 fold 1" in table
    assert "-0.0500" in table and "MOVED" in table and "0.5000" in table and "0.4500" in table


def test_missing_and_extra_cells_fail():
    comparison = regression.compare({KEY: {"war": 0.5, "uar": 0.4}}, {OTHER: {"war": 0.3, "uar": 0.3}}, TOL)
    assert len(comparison.failures) == 4
    assert "MISSING" in regression.format_table(comparison)


def test_baseline_errors_name_the_file(tmp_path):
    with pytest.raises(regression.BaselineError, match="no baseline"):
        regression.load_baseline(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(regression.BaselineError, match=r"bad\.json: not valid JSON"):
        regression.load_baseline(bad)


def test_committed_baseline_matches_the_ci_subset_study():
    from pathlib import Path

    from benchmark.studies import load_study

    root = Path(__file__).parent.parent
    data = regression.load_baseline(root / "reports" / "baselines" / "ci_subset.json")
    study = load_study(root / "studies" / "ci_subset.toml")
    assert len(data["cells"]) == len(study.cells())
    assert {"torch", "transformers", "mlflow"} <= set(data["versions"])


@pytest.mark.slow
def test_regression_command_end_to_end_and_deterministic(tmp_path, capsys):
    from tests.test_runner import make_study

    study = make_study(tmp_path)  # the runner tests' small study; `regression` points it at --store
    baseline = tmp_path / "baseline.json"
    args = [str(study), "--baseline", str(baseline), "--no-progress"]
    assert main(["regression", *args, "--update-baseline", "--store", str(tmp_path / "a")]) == 0
    written = json.loads(baseline.read_text())
    assert len(written["cells"]) == 4 and written["versions"]["torch"]
    capsys.readouterr()

    # A second, independent run on the same CPU reproduces every figure exactly.
    assert main(["regression", *args, "--store", str(tmp_path / "b")]) == 0
    assert "all 4 cells within tolerance" in capsys.readouterr().out
    from benchmark.tracking import Tracker

    runs_a = Tracker(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}", "mini").runs("cell", "FINISHED")
    runs_b = Tracker(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}", "mini").runs("cell", "FINISHED")
    assert regression.results_from_runs(runs_a) == regression.results_from_runs(runs_b)

    # Move one baseline figure: the check fails and prints what moved.
    written["cells"][0]["uar"] += 0.1
    baseline.write_text(json.dumps(written))
    assert main(["regression", *args]) == 1
    out = capsys.readouterr().out
    assert "1 of 8 figures moved beyond tolerance" in out and "-0.1000" in out and "MOVED" in out
