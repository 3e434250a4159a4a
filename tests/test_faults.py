"""Faults: SIGKILL at each named point of a cell and of a report, then a rerun; unwritable outputs.

A kill comes from ``benchmark.faults.checkpoint`` in a real ``gemo-bench`` subprocess (``GEMO_FAULT``), so
it lands at a known moment; the rerun must leave each cell with exactly one FINISHED run, no RUNNING run,
parents that agree with their finished children, and report files identical to a clean run's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark import faults
from benchmark.cli import main
from benchmark.studies import load_study
from benchmark.tracking import Tracker, fold_summary, resolve_uri
from tests.test_runner import STUDY

KILLED = -signal.SIGKILL


def gemo_bench(*args: str, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    """Run ``gemo-bench`` in a subprocess, optionally with a fault armed."""
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    if fault:
        env[faults.ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def write_study(tmp_path: Path, uri: str | None = None, variants: str = '["emo-clap"]') -> Path:
    """The runner tests' mini study, cut to one configuration x 2 folds (2 cells) unless told otherwise."""
    text = STUDY.format(epochs=1, uri=uri or f"sqlite:///{tmp_path / 'mlflow.db'}")
    text = text.replace('variants = ["emo-clap", "sl-gemo-clap"]', f"variants = {variants}")
    path = tmp_path / "mini.toml"
    path.write_text(text)
    return path


def tracker_of(path: Path) -> Tracker:
    study = load_study(path)
    return Tracker(resolve_uri(study.tracking.uri), study.experiment_name)


def assert_consistent(tracker: Tracker, n_cells: int, killed: int) -> None:
    """Each cell finished exactly once, no run left RUNNING, every parent equal to its finished children."""
    cells = tracker.runs("cell")
    finished = [r for r in cells if r.status == "FINISHED"]
    counts = Counter(r.tags["gemo.cell_id"] for r in finished)
    assert len(counts) == n_cells and set(counts.values()) == {1}, counts
    assert Counter(r.status for r in cells if r.status != "FINISHED") == ({"KILLED": killed} if killed else {})
    for parent in tracker.runs("config"):
        mine = [r.metrics for r in finished if r.tags["gemo.config_id"] == parent.tags["gemo.config_id"]]
        expected = fold_summary(mine)
        assert parent.metrics["folds"] == len(mine) == expected["folds"]
        assert parent.metrics["uar_mean"] == pytest.approx(expected["uar_mean"])
        assert parent.metrics["war_std"] == pytest.approx(expected["war_std"])
        assert parent.tags["gemo.folds_done"] == str(len(mine))


# --------------------------------------------------------------------------- the hook itself

HOOK = """
from benchmark.faults import checkpoint
for i in range(3):
    checkpoint("report-midway")
    print(i, flush=True)
"""


@pytest.mark.parametrize(
    ("fault", "survived"),
    [
        (None, "0 1 2"),
        ("report-midway", ""),
        ("report-midway:2", "0"),
        ("report-midway:3", "0 1"),
        ("cell-started", "0 1 2"),
    ],
)
def test_checkpoint_kills_on_the_nth_time_its_point_is_reached(tmp_path: Path, fault: str | None, survived: str):
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    if fault:
        env[faults.ENV] = fault
    proc = subprocess.run([sys.executable, "-c", HOOK], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == survived.split()
    assert proc.returncode == (0 if survived == "0 1 2" else KILLED), proc.stderr


@pytest.mark.parametrize("fault", ["report-midwya", "report-midway:0", "report-midway:x"])
def test_a_mistyped_fault_is_an_error_not_a_survivor(monkeypatch: pytest.MonkeyPatch, fault: str):
    monkeypatch.setenv(faults.ENV, fault)
    with pytest.raises(ValueError, match=f"{faults.ENV}="):
        faults.checkpoint("report-midway")


# --------------------------------------------------------------------------- killed cells

# (fault, cell runs the rerun finds RUNNING and marks KILLED, cells the rerun trains)
CELL_FAULTS = [
    ("cell-started", 1, 2),
    ("before-artifacts", 1, 2),
    ("before-finish", 1, 2),
    ("before-parent-update:2", 0, 0),  # both cells finished; their parent counts one fold
]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "killed", "trained"), CELL_FAULTS, ids=[f[0] for f in CELL_FAULTS])
def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path: Path, capsys, fault: str, killed: int, trained: int):
    path = write_study(tmp_path)
    proc = gemo_bench("run", str(path), "--no-progress", cwd=tmp_path, fault=fault)
    assert proc.returncode == KILLED, proc.stdout + proc.stderr

    # what the kill left behind
    tracker = tracker_of(path)
    running = tracker.runs("cell", "RUNNING")
    assert len(running) == killed
    if fault == "before-parent-update:2":
        assert len(tracker.runs("cell", "FINISHED")) == 2
        (parent,) = tracker.runs("config")
        assert parent.metrics["folds"] == 1
    else:
        (victim,) = running
        artifacts = {a.path for a in tracker.client.list_artifacts(victim.run_id)}
        assert ("test_uar" in victim.metrics) == (fault != "cell-started")
        assert ("metrics.json" in artifacts) == (fault == "before-finish")

    assert main(["run", str(path), "--no-progress"]) == 0
    assert f": {trained} cells trained" in capsys.readouterr().out
    assert_consistent(tracker, n_cells=2, killed=killed)
    for run in tracker.runs("cell", "FINISHED"):
        names = {a.path for a in tracker.client.list_artifacts(run.run_id)}
        assert {"metrics.json", "predictions.csv", "confusion.png", "cell_spec.json"} <= names


def _default_ctrl_c() -> None:
    # what a terminal gives the command it starts, whatever started pytest (a background shell ignores SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("workers", "stop", "whole_group"),
    [(1, signal.SIGINT, True), (2, signal.SIGINT, True), (1, signal.SIGTERM, True), (2, signal.SIGTERM, False)],
    # Ctrl-C at a terminal and `timeout` signal the whole process group; `kill PID` signals the command alone
    ids=["ctrl-c-1-worker", "ctrl-c-2-workers", "timeout-1-worker", "kill-pid-2-workers"],
)
def test_ctrl_c_or_sigterm_ends_the_cells_in_training_killed_and_the_rerun_finishes_the_study(
    tmp_path: Path, capsys, workers: int, stop: signal.Signals, whole_group: bool
):
    # 4 cells of 40 epochs: a cell seen at its first epoch is still training when the signal lands
    path = tmp_path / "mini.toml"
    path.write_text(STUDY.format(epochs=40, uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    tracker = tracker_of(path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", "run", str(path), "--no-progress", "--workers", str(workers)],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != faults.ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, signalled as a whole, as a terminal does
        preexec_fn=_default_ctrl_c,
    )
    deadline = time.monotonic() + 300
    while not any("train_loss" in r.metrics for r in tracker.runs("cell", "RUNNING")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    if whole_group:
        os.killpg(proc.pid, stop)
    else:
        os.kill(proc.pid, stop)
    out, _ = proc.communicate(timeout=300)
    name = "Ctrl-C" if stop == signal.SIGINT else "SIGTERM"

    assert proc.returncode == 128 + stop, out
    assert f"interrupted ({name}) after" in out and "run the same command again to resume" in out, out
    assert "Traceback" not in out, out
    assert not tracker.runs("cell", "RUNNING")  # nothing left for the next run to guess about
    killed = tracker.runs("cell", "KILLED")
    assert 1 <= len(killed) <= workers
    for run in killed:
        assert run.tags["gemo.end_reason"] == f"interrupted ({name}); the next run trains the cell again"
    finished = len(tracker.runs("cell", "FINISHED"))
    assert finished < 4
    assert f"interrupted ({name}) after {finished} cells trained" in out, out  # the outcomes the workers sent, all

    assert main(["run", str(path), "--no-progress"]) == 0
    assert f": {4 - finished} cells trained, {finished} already finished" in capsys.readouterr().out
    assert_consistent(tracker, n_cells=4, killed=len(killed))


def test_a_parent_left_half_created_is_completed(tmp_path: Path):
    tracker = tracker_of(write_study(tmp_path))
    # what a process killed between creating the parent and logging its params leaves behind
    run = tracker.client.create_run(tracker.experiment_id, tags={"gemo.kind": "config", "gemo.config_id": "c1"})
    parent = tracker.parent("c1", "name", {"variant": "emo-clap"}, {"gemo.kind": "config"})
    assert parent == run.info.run_id
    stored = tracker.client.get_run(parent)
    assert stored.info.status == "FINISHED" and stored.data.params == {"variant": "emo-clap"}
    assert len(tracker.runs("config")) == 1


# --------------------------------------------------------------------------- killed reports


def fake_finished_runs(tracker: Tracker) -> None:
    """Two configurations x two folds of FINISHED runs, logged directly: a report needs no training."""
    for variant, alpha in (("emo-clap", 1.0), ("sl-gemo-clap", 0.8)):
        params = {"audio_encoder": "tiny-wav2vec2", "variant": variant, "alpha": alpha, "ml_mode": "head", "seed": 0}
        tags = {"gemo.data_source": "embedded", "gemo.weights": "random-init (tiny-wav2vec2)", "gemo.git_sha": "abc"}
        cfg = f"config-{variant}"
        parent = tracker.parent(cfg, variant, params, {**tags, "gemo.config_id": cfg})
        for fold in (1, 2):
            cell_tags = {**tags, "gemo.config_id": cfg, "gemo.cell_id": f"{cfg}-{fold}"}
            run_id = tracker.start_cell(parent, f"{variant} fold {fold}", {**params, "fold": fold}, cell_tags)
            tracker.log_metrics(run_id, {"test_war": 0.4 + 0.1 * fold, "test_uar": 0.3 + alpha * fold / 10})
            tracker.end(run_id)
        tracker.update_parent(parent, cfg)


def report_files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder``, the markdown and the LaTeX without their one timestamped line (to the minute,
    so two writes a few seconds apart may straddle a minute)."""
    stamps = {"table.md": b"- **generated**", "table.tex": b"% generated:"}
    out = {}
    for p in sorted(folder.iterdir()):
        data = p.read_bytes()
        if p.name in stamps:
            kept = [line for line in data.split(b"\n") if not line.startswith(stamps[p.name])]
            assert len(kept) == data.count(b"\n"), f"{p.name}: expected one timestamped line"
            data = b"\n".join(kept)
        out[p.name] = data
    return out


@pytest.fixture
def logged_study(tmp_path: Path) -> Path:
    path = write_study(tmp_path, variants='["emo-clap", "sl-gemo-clap"]')
    fake_finished_runs(tracker_of(path))
    return path


def test_sigkill_midway_through_a_report_then_rerun_writes_it_whole(logged_study: Path, tmp_path: Path):
    assert main(["report", "table", str(logged_study), "--out", str(tmp_path / "clean")]) == 0
    clean = report_files(tmp_path / "clean" / "mini")
    assert set(clean) == {"table.md", "table.csv", "table.tex", "table.png"}

    out = tmp_path / "reports"
    midway = [{"table.md"}, {"table.md", "table.csv"}, {"table.md", "table.csv", "table.tex"}]
    for fault, written in zip(("report-midway", "report-midway:2", "report-midway:3"), midway, strict=True):
        proc = gemo_bench("report", "table", str(logged_study), "--out", str(out), cwd=tmp_path, fault=fault)
        assert proc.returncode == KILLED, proc.stdout + proc.stderr
        left = report_files(out / "mini")
        assert set(left) == written  # complete files only: no half-written table, no temporary file
        assert left == {name: clean[name] for name in written}

    # a writer killed inside a file leaves its temporary file; the next run removes it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / "mini" / f".table.png.{int(dead.stdout)}.k1ll3d00.tmp"
    stale.write_bytes(clean["table.png"][:100])
    assert main(["report", "table", str(logged_study), "--out", str(out)]) == 0
    assert report_files(out / "mini") == clean
    tracker = tracker_of(logged_study)
    (study_run,) = tracker.runs("study")
    logged = {a.path for a in tracker.client.list_artifacts(study_run.run_id, "reports")}
    assert logged == {"reports/table.md", "reports/table.csv", "reports/table.tex", "reports/table.png"}


# --------------------------------------------------------------------------- unwritable outputs


def _mount_tmpfs(target: Path, options: str) -> bool:
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    except OSError:
        return False
    return proc.returncode == 0


@contextlib.contextmanager
def unwritable(tmp_path: Path, kind: str) -> Iterator[tuple[Path, str]]:
    """A folder that refuses writes for real, and the OS reason it will give.

    ``read-only``: chmod 0o555, or as root (whom permission bits do not stop) a read-only tmpfs;
    ``not-a-directory``: a regular file where the folder should be; ``full``: a tmpfs filled to the last
    byte. Where mounting is not permitted, the cases that need a mount are skipped.
    """
    target = tmp_path / "out"
    if kind == "not-a-directory":
        target.write_text("a file, not a folder\n")
        yield target, os.strerror(errno.ENOTDIR)
        return
    target.mkdir()
    mounted = False
    try:
        if kind == "read-only":
            target.chmod(0o555)
            try:
                (target / "probe").touch()
            except PermissionError:
                yield target, os.strerror(errno.EACCES)
                return
            (target / "probe").unlink()
            target.chmod(0o755)
            mounted = _mount_tmpfs(target, "ro,size=64k")
            if not mounted:
                pytest.skip("root without permission to mount: cannot make a folder read-only")
            yield target, os.strerror(errno.EROFS)
        else:
            mounted = _mount_tmpfs(target, "size=64k")
            if not mounted:
                pytest.skip("needs permission to mount a small tmpfs to fill")
            with contextlib.suppress(OSError), open(target / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            yield target, os.strerror(errno.ENOSPC)
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=True)
        elif target.is_dir():
            target.chmod(0o755)


def leftovers(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != "filler")


@pytest.mark.parametrize("kind", ["read-only", "not-a-directory", "full"])
def test_report_to_an_unwritable_folder_is_one_clear_error(logged_study: Path, tmp_path: Path, capsys, kind: str):
    with unwritable(tmp_path, kind) as (out, reason):
        code = main(["report", "table", str(logged_study), "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == ""
        (line,) = captured.err.splitlines()
        assert line.startswith(f"gemo-bench: error: {out / 'mini'}")
        assert reason in line, line
        # nothing half-written: at most the empty study folder
        assert leftovers(out) in ([], ["mini"]), leftovers(out)


@pytest.mark.parametrize("kind", ["read-only", "not-a-directory", "full"])
def test_run_with_an_unwritable_store_is_one_clear_error(tmp_path: Path, capsys, kind: str):
    with unwritable(tmp_path, kind) as (out, reason):
        store = out / "store"
        uri = f"sqlite:///{store / 'mlflow.db'}"
        code = main(["run", str(write_study(tmp_path, uri=uri)), "--no-progress"])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == ""
        (line,) = captured.err.splitlines()
        assert line == f"gemo-bench: error: {store}: the MLflow store ({uri}) is not writable: {reason}"
        assert leftovers(out) in ([], ["store"]), leftovers(out)
