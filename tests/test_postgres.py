"""A search on a real, throw-away PostgreSQL server: Optuna storage and MLflow backend store, 3 workers.

The fixture runs Debian's ``postgresql`` server binaries (``initdb``, ``pg_ctl``; ``.ci/run`` installs the
package) on a free loopback port in a temporary folder. The server refuses to run as root, so under root
it runs as the ``postgres`` account (or ``nobody``). The test is skipped only when the binaries are absent.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark.search import count_trials, open_storage, storage_url, targets
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri

pytestmark = pytest.mark.slow
# psycopg2 (the `postgres` extra); a bare postgresql:// means psycopg 3 to SQLAlchemy 2.1
PG = "postgresql+psycopg2"
PASSWORD = "pg-SECRET-789"


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian), else wherever ``pg_ctl`` is on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unprivileged() -> dict:
    """``subprocess`` arguments that run the server as an ordinary account when this process is root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam(name)
            return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists to run the server")


@pytest.fixture(scope="module")
def postgres():
    """``(host, port, user)`` of a fresh server with databases ``optuna`` and ``mlflow``; removed afterwards.

    Password authentication (:data:`PASSWORD`), so the test can check that no password is logged.
    """
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl): apt-get install postgresql")
    import psycopg2  # the `postgres` extra

    as_server = unprivileged()
    root = Path(tempfile.mkdtemp(prefix="gemo-pg-"))
    if as_server:
        os.chown(root, as_server["user"], as_server["group"])
    data = root / "data"
    pwfile = root / "password"
    pwfile.write_text(PASSWORD)
    if as_server:
        os.chown(pwfile, as_server["user"], as_server["group"])
    subprocess.run(
        [
            *(binaries / "initdb", "-D", data, "-U", "gemo", "-E", "UTF8", "--no-sync"),
            *("--auth=scram-sha-256", f"--pwfile={pwfile}"),
        ],
        check=True,
        capture_output=True,
        cwd=root,
        **as_server,
    )
    port = None
    try:
        for _ in range(5):  # a port found free can be taken before the server binds it: try another
            candidate = free_port()
            with open(data / "postgresql.conf", "a") as conf:
                conf.write(
                    f"\nport = {candidate}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                    "fsync = off\nfull_page_writes = off\nmax_connections = 100\n"
                )
            started = subprocess.run(
                [binaries / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "start"],
                capture_output=True,
                cwd=root,
                **as_server,
            )
            if started.returncode == 0:
                port = candidate
                break
        assert port is not None, (root / "server.log").read_text()
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="gemo", password=PASSWORD, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield "127.0.0.1", port, "gemo"
    finally:
        if port is not None:
            subprocess.run(
                [binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                capture_output=True,
                cwd=root,
                **as_server,
            )
        shutil.rmtree(root, ignore_errors=True)


STUDY = """
name = "pgsearch"
[data]
corpus = "embedded"
size = 100
[encoders]
audio = ["tiny-wavlm"]
text = "tiny-roberta"
[method]
variants = ["sl-gemo-clap"]
[model]
proj_dim = 16
[train]
epochs = 2
batch_size = 16
max_seconds = 1.0
freeze_encoders = "audio"
[protocol]
folds = [1]
[search]
trials = 6
temperature = [0.05, 0.5]
folds = [2]
pruner = "none"
heartbeat_s = 2
grace_s = 10
storage = "{optuna}"
[tracking]
uri = "{mlflow}"
"""


def test_three_workers_on_postgresql_run_every_trial_once(postgres, tmp_path):
    host, port, user = postgres
    path = tmp_path / "pgsearch.toml"
    path.write_text(
        STUDY.format(
            optuna=f"{PG}://{user}:{PASSWORD}@{host}:{port}/optuna",
            mlflow=f"{PG}://{user}:{PASSWORD}@{host}:{port}/mlflow",
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "search", str(path), "--workers", "3", "--no-progress"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = load_study(path)
    assert storage_url(study).startswith(f"{PG}://")

    (target,) = targets(study)
    storage = open_storage(study.search, storage_url(study))
    trials = optuna.load_study(study_name=target.study_name, storage=storage).get_trials(deepcopy=False)
    counts = count_trials(trials)
    assert (counts.done, counts.complete, counts.running, counts.waiting) == (6, 6, 0, 0), counts
    assert sorted(t.number for t in trials) == list(range(6))  # every trial once, no retry needed
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6

    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    everything = tracker.search("")
    assert not [r for r in everything if r.status == "RUNNING"]  # of any kind
    (parent,) = tracker.runs("search")
    runs = tracker.runs("trial")
    assert Counter(int(r.tags["gemo.trial_number"]) for r in runs) == Counter(range(6))
    assert {r.status for r in runs} == {"FINISHED"}
    assert {r.tags["mlflow.parentRunId"] for r in runs} == {parent.run_id}
    assert len({r.tags["gemo.pid"] for r in runs}) > 1  # several workers shared the trials
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.run_id for r in runs}
    (best,) = tracker.runs("search-best")
    assert best.metrics["objective"] == pytest.approx(max(t.value for t in trials))
    (cell,) = tracker.runs("cell", "FINISHED")
    assert "test_uar" in cell.metrics and cell.params["fold"] == "1"
    # the reports' table read gives the API's records on PostgreSQL too
    for kind in ("search", "trial", "search-best", "config", "cell"):
        assert tracker.read_runs(kind) == tracker.runs(kind), kind
    assert tracker._engine is not None and tracker._engine.dialect.name == "postgresql"

    # both URLs carry the password: it reaches no param, tag, artifact, Optuna attribute or output line
    spec = tracker.client.download_artifacts(cell.run_id, "cell_spec.json", str(tmp_path))
    logged = json.dumps([[r.params, r.tags] for r in everything]) + Path(spec).read_text()
    logged += json.dumps([[t.user_attrs, t.system_attrs] for t in trials], default=str)
    logged += json.dumps(optuna.load_study(study_name=target.study_name, storage=storage).user_attrs)
    assert PASSWORD not in logged + proc.stdout + proc.stderr
    assert "***@127.0.0.1" in proc.stdout  # the dashboard hint names the storage, masked
