"""Executors: the job-array path through submitit's local executor for real, and Slurm up to ``sbatch``."""

import os
import stat
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.executors import ExecutorSpec, make_executor
from benchmark.runner import run_study
from benchmark.search import run_search
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri

STUDY = """
name = "arrays"
[data]
corpus = "embedded"
size = 100
[encoders]
audio = ["tiny-wavlm"]
text = "tiny-roberta"
[method]
variants = ["sl-gemo-clap"]
alphas = [0.8]
[model]
proj_dim = 16
[train]
epochs = 1
batch_size = 16
max_seconds = 1.0
freeze_encoders = "audio"
[protocol]
folds = [1, 2]
[search]
trials = 3
folds = [3]
pruner = "none"
heartbeat_s = 1
grace_s = 4
[executor]
kind = "submitit-local"
gpus_per_task = 0
timeout_min = 20
[tracking]
uri = "{uri}"
"""


def make_study(tmp_path):
    path = tmp_path / "arrays.toml"
    path.write_text(STUDY.format(uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    return path


def tracker_of(study):
    return Tracker(resolve_uri(study.tracking.uri), study.experiment_name)


@pytest.mark.slow
def test_run_as_a_job_array_one_task_per_cell_and_a_killed_task_is_reported_then_resumed(tmp_path, monkeypatch, capsys):
    path = make_study(tmp_path)
    study = load_study(path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GEMO_FAULT", "cell-started")  # each task is killed once its cell's run exists
    summary = run_study(study, progress=False)
    assert len(summary.failed) == 2 and not summary.trained
    assert all("Error" in reason for reason in summary.failed.values()), summary.failed
    tracker = tracker_of(study)
    assert len(tracker.runs("cell", "RUNNING")) == 2  # orphaned by the killed tasks

    monkeypatch.delenv("GEMO_FAULT")
    # the same array path from the command line: the flags override the study's [executor] table
    code = main(["run", str(path), "--no-progress", "--executor", "submitit-local", "--timeout-min", "15"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 cells trained" in out
    finished = tracker.runs("cell", "FINISHED")
    assert sorted(r.params["fold"] for r in finished) == ["1", "2"]
    assert len({r.tags["gemo.pid"] for r in finished}) == 2 and str(os.getpid()) not in {
        r.tags["gemo.pid"] for r in finished
    }  # each cell ran in a task process of its own
    assert {r.status for r in tracker.runs("cell")} == {"FINISHED", "KILLED"}
    logs = list((tmp_path / ".gemo" / "submitit").glob("*/*_log.out"))
    assert len(logs) >= 4  # two killed tasks, two finished ones


@pytest.mark.slow
def test_search_workers_as_array_tasks(tmp_path, monkeypatch):
    study = load_study(make_study(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (result,) = run_search(study, workers=2, progress=False)
    assert result.counts.done == 3 and result.counts.complete == 3 and not result.worker_errors
    tracker = tracker_of(study)
    trials = tracker.runs("trial", "FINISHED")
    assert sorted(int(r.tags["gemo.trial_number"]) for r in trials) == [0, 1, 2]
    assert str(os.getpid()) not in {r.tags["gemo.pid"] for r in trials}  # trials ran in the array's tasks
    # the best configuration was tested on both protocol folds, through the array too
    cells = tracker.runs("cell", "FINISHED")
    assert sorted(r.params["fold"] for r in cells) == ["1", "2"]
    assert str(os.getpid()) not in {r.tags["gemo.pid"] for r in cells}
    assert result.test["folds"] == 2


def _fake_slurm(bin_dir: Path) -> Path:
    """``sbatch`` and ``srun`` stand-ins: the cluster is the one part that cannot run here."""
    bin_dir.mkdir()
    calls = bin_dir / "calls"
    for name, body in (("sbatch", 'echo "$@" >> "{calls}"\necho "Submitted batch job 4242"\n'), ("srun", "")):
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body.format(calls=calls))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return calls


def test_slurm_job_array_script_carries_the_spec(tmp_path, monkeypatch):
    calls = _fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    spec = load_study(
        make_study(tmp_path),
        [
            "executor.kind=slurm",
            "executor.partition=gpu",
            "executor.gpus_per_task=2",
            "executor.cpus_per_task=6",
            "executor.mem_gb=48",
            "executor.timeout_min=90",
            "executor.array_parallelism=2",
            "executor.account=ser",
            "executor.setup=['source .venv/bin/activate']",
        ],
    ).executor
    assert isinstance(spec, ExecutorSpec) and spec.setup == ("source .venv/bin/activate",)
    executor = make_executor(spec, tmp_path / "submitit", "gemo-arrays")
    jobs = executor.map_array(abs, [-1, 2, -3])
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    (script,) = (tmp_path / "submitit").glob("4242/*_submission.sh")
    text = script.read_text()
    for line in (
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=ser",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=48GB",
        "#SBATCH --time=90",
        "#SBATCH --job-name=gemo-arrays",
        "#SBATCH --ntasks-per-node=1",
        "source .venv/bin/activate",
    ):
        assert line in text, line
    assert calls.read_text().strip()  # sbatch was called


def test_local_kind_is_not_a_submitit_executor(tmp_path):
    with pytest.raises(ValueError, match="runs worker processes"):
        make_executor(ExecutorSpec(), tmp_path, "x")
