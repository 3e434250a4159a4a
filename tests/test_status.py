"""`gemo-bench status`: a study's cells as the store and the locks show them, after real runs of the study."""

import json
import signal
import socket
import statistics
import time

import pytest

from benchmark.cli import main
from benchmark.runner import run_study
from benchmark.status import render, study_status
from benchmark.studies import cell_id, load_study
from benchmark.tracking import Tracker, resolve_uri
from tests.test_runner import cli as spawn
from tests.test_runner import make_study


def status_of(path, *overrides):
    return study_status(load_study(path, list(overrides)))


def by_state(status):
    out = {}
    for c in status.cells:
        out.setdefault(c.state, []).append(c)
    return out


def test_a_study_never_run_is_all_pending_and_nothing_is_created(tmp_path, capsys):
    path = make_study(tmp_path)
    status = status_of(path)
    assert [c.state for c in status.cells] == ["pending"] * 4
    assert not status.store_exists and not status.complete and status.estimate_seconds is None
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / ".gemo").exists()

    # a store that exists but holds no run of this study: the experiment is not created either
    other = Tracker(resolve_uri(load_study(path).tracking.uri), "another study")
    assert not status_of(path).store_exists
    assert other.client.get_experiment_by_name("mini") is None

    assert main(["status", str(path), "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mini: 4 cells: 0 finished, 4 pending\n")
    assert "no runs of experiment 'mini' yet" in out
    assert f"next: gemo-bench run {path} train.epochs=3 trains the 4 cells" in out


@pytest.mark.slow
def test_finished_failed_and_foreign_runs_and_the_time_left(tmp_path, capsys):
    path = make_study(tmp_path)
    run_study(load_study(path, ["protocol.folds=[1]"]), progress=False)
    study = load_study(path)
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    runs = {r.tags["gemo.cell_id"]: tracker.client.get_run(r.run_id) for r in tracker.runs("cell")}

    status = status_of(path)
    states = by_state(status)
    assert {k: len(v) for k, v in states.items()} == {"finished": 2, "pending": 2}
    assert {c.fold for c in states["finished"]} == {1} and {c.fold for c in states["pending"]} == {2}
    durations = []
    for c in states["finished"]:
        run = runs[c.cell_id]
        assert c.run_id == run.info.run_id
        assert (c.war, c.uar) == (run.data.metrics["test_war"], run.data.metrics["test_uar"])
        assert c.seconds == (run.info.end_time - run.info.start_time) / 1000
        durations.append(c.seconds)
    # one audio encoder: each of the 2 pending cells costs the median of the 2 finished ones
    assert status.estimate_seconds == pytest.approx(2 * statistics.median(durations))
    assert status.counts == {"finished": 2, "running": 0, "stale": 0, "failed": 0, "killed": 0, "pending": 2}

    # a cell that fails: its newest run's error is the reason, and the next run would train it again
    run_study(load_study(path, ["protocol.folds=[2]", "train.lr=1e30"]), progress=False)
    failing = status_of(path, "train.lr=1e30")
    states = by_state(failing)
    assert {k: len(v) for k, v in states.items()} == {"failed": 2, "pending": 2}
    for c in states["failed"]:
        assert c.fold == 2 and c.reason.startswith("NonFiniteLossError: non-finite loss (")
        assert tracker.client.get_run(c.run_id).info.status == "FAILED"
    assert failing.estimate_seconds is None  # none of these cells has finished: nothing to go by
    # the failed runs are cells of another grid (lr is part of a cell); only finished ones are counted there
    assert status_of(path).other_finished == 0
    assert status_of(path, "train.epochs=2").other_finished == 2

    assert main(["status", str(path), "train.lr=1e30"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mini: 4 cells: 0 finished, 2 failed, 2 pending\n")
    assert "\nfailed:\n  tiny-wav2vec2 emo-clap s0 fold 2: NonFiniteLossError: non-finite loss (" in out
    assert "time left: unknown (no finished cell to estimate from)" in out

    assert main(["status", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is False and data["counts"]["finished"] == 2
    assert data["data"]["kind"] == "embedded" and data["fingerprint"] == status.fingerprint
    assert [(c["fold"], c["state"]) for c in data["cells"]] == [(c.fold, c.state) for c in status.cells]

    run_study(load_study(path), progress=False)
    done = status_of(path)
    assert done.complete and done.estimate_seconds == 0.0
    assert "complete: every cell finished. Reports: gemo-bench report all x.toml" in render(done, "x.toml")


@pytest.mark.slow
def test_a_running_cell_then_its_killed_process_leaves_it_stale(tmp_path):
    path = make_study(tmp_path)
    overrides = ["train.epochs=200", "protocol.folds=[1]"]  # a cell long enough to catch running
    study = load_study(path, overrides)
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    proc = spawn("run", str(path), *overrides, "--no-progress", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not tracker.runs("cell", "RUNNING"):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no cell started in time"
            time.sleep(0.1)
        (live,) = tracker.runs("cell", "RUNNING")
        status = status_of(path, *overrides)
        states = by_state(status)
        assert [c.run_id for c in states["running"]] == [live.run_id]
        (running,) = states["running"]
        assert (running.pid, running.host) == (str(proc.pid), socket.gethostname())
        assert (
            running.cell_id
            == live.tags["gemo.cell_id"]
            == cell_id(next(c for c in study.cells() if c.variant == "emo-clap"), status.fingerprint)
        )
        assert running.seconds >= 0 and len(states["pending"]) == 1
        assert running.epochs == 200 and 0 <= running.epoch < 200 and running.saved_epoch is None
        text = render(status, str(path))
        assert "running:\n  tiny-wav2vec2 emo-clap s0 fold 1: " in text
        assert f", epoch {running.epoch} of 200 done" in text
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    # nobody holds the cell's lock any more: the store still says RUNNING, the status says stale
    assert tracker.client.get_run(live.run_id).info.status == "RUNNING"
    status = status_of(path, *overrides)
    (stale,) = by_state(status)["stale"]
    assert stale.run_id == live.run_id
    assert stale.epoch == len(tracker.client.get_metric_history(live.run_id, "val_uar"))  # the epochs it logged
    assert "stale (process died):\n  tiny-wav2vec2 emo-clap s0 fold 1: " in render(status, str(path))
    assert tracker.client.get_run(live.run_id).info.status == "RUNNING"  # looking changed nothing

    # what the next `run` does first: the dead process's run is marked KILLED, and the status says so
    from benchmark.runner import prepare, sweep_stale

    assert sweep_stale(prepare(study)) == 1
    (killed,) = by_state(status_of(path, *overrides))["killed"]
    assert (killed.run_id, killed.reason) == (live.run_id, "process died before the cell finished")
