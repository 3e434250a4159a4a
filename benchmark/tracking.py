"""Everything the suite stores in MLflow goes through this module (the only one that imports mlflow).

Layout of a study's experiment:

- one ``study`` run holding the reports (``gemo.kind = study``);
- one parent run per configuration (encoder, variant, alpha, seed, ...; ``gemo.kind = config``) with
  WAR/UAR mean and std over its finished folds;
- one child run per fold (``gemo.kind = cell``): the resolved config as params, per-epoch metrics,
  final test metrics overall and per gender, artifacts (confusion matrices, predictions, spec);
- per search (``gemo-bench search``; one per audio encoder x variant) a parent run (``gemo.kind =
  search``) with a nested run per Optuna trial (``trial``: the sampled values as params, per-epoch
  ``val_uar`` and the running ``objective``, the best validation UAR per fold ``val_uar_fold<k>``, the
  final ``objective``) and a nested ``search-best`` run that points at the best configuration's
  test-fold evaluation (an ordinary configuration parent with its fold runs).

Only a few metric columns are logged so the UI stays usable with many runs; per-class detail is in
the artifacts.

A cell's trained model (``tracking.log_models``) is a ``model/`` artifact of its fold run that is also an
MLflow model: :func:`write_pyfunc_description` writes its ``MLmodel`` file and :func:`download` fetches it back.

Reading many runs at once (:meth:`Tracker.read_runs`, the reports) goes to a SQL store's tables directly,
and falls back to the MLflow API elsewhere; everything else goes through ``MlflowClient``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from sqlalchemy import bindparam, create_engine
from sqlalchemy import text as sql_text
from sqlalchemy.exc import SQLAlchemyError

DEFAULT_DB = "mlflow.db"
PARENT_TAG = "mlflow.parentRunId"
MAX_RESULTS = 50_000  # search_runs page size: one query per page for the whole experiment
# URI schemes of MLflow's SQL stores (``postgresql+psycopg2://`` counts as ``postgresql``)
_SQL_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql"}


def resolve_uri(spec_uri: str = "") -> str:
    """Tracking URI: the study's, else ``MLFLOW_TRACKING_URI``, else a SQLite store in the working directory."""
    if spec_uri:
        return spec_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def state_dir(uri: str) -> Path:
    """Where locks live: beside a local tracking store, else ``.gemo`` in the working directory."""
    return (local_store_dir(uri) or Path.cwd()) / ".gemo"


def local_store_dir(uri: str) -> Path | None:
    """The directory of a SQLite or file store (None for a server)."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve().parent
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file://").removeprefix("file:")).resolve()
    return None


def store_exists(uri: str) -> bool:
    """Whether a local store (a SQLite file, a file store's folder) exists; a server's store always does."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    if uri.startswith("file:"):
        return local_store_dir(uri).is_dir()
    return True


class StoreError(OSError):
    """A local tracking store that cannot be written; the message names the store and the OS reason."""


@dataclass(frozen=True)
class RunRecord:
    """What reports need of a run, without MLflow types."""

    run_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    start_time: int
    artifact_uri: str = ""
    end_time: int | None = None  # milliseconds, as start_time; None while the run has not ended


class Tracker:
    """One study's experiment in one tracking store."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri = uri
        self._engine = None  # SQLAlchemy engine of read_runs, made on first use
        store = local_store_dir(uri)
        if store is None:
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment(experiment)
            return
        _check_writable(store, uri)
        # The first touch of a new SQLite store creates its schema; two processes doing it at once
        # collide, so local stores are opened one process at a time.
        fd = os.open(store / ".mlflow-init.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment(experiment)
        finally:
            os.close(fd)

    @classmethod
    def existing(cls, uri: str, experiment: str) -> Tracker | None:
        """The experiment's tracker if its store and the experiment exist, else None; creates neither.

        For commands that only look (``gemo-bench status``): run from the wrong directory, they must not leave
        an empty ``mlflow.db`` behind.
        """
        if not store_exists(uri):
            return None
        if MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment) is None:
            return None
        return cls(uri, experiment)

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        store = local_store_dir(self.uri)
        # one artifact folder per experiment beside a local store; a server chooses its own
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        location = (store / "mlartifacts" / slug).as_uri() if store else None
        try:
            # experimentKind opens the UI on the runs table rather than its GenAI overview
            return self.client.create_experiment(
                name, artifact_location=location, tags={"mlflow.experimentKind": "custom_model_development"}
            )
        except MlflowException:
            # another worker created it between our lookup and create
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # ---- queries (bulk) --------------------------------------------------------------------------------

    def search(self, filter_string: str = "") -> list[RunRecord]:
        """All runs of the experiment matching ``filter_string``, in as few queries as pages."""
        out, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=filter_string,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=MAX_RESULTS,
                page_token=token,
            )
            out += [_record(r) for r in page]
            token = page.token
            if not token:
                return out

    def runs(self, kind: str, status: str | None = None, **tags: str) -> list[RunRecord]:
        clauses = [f"tags.`gemo.kind` = '{kind}'"]
        clauses += [f"tags.`gemo.{k}` = '{v}'" for k, v in tags.items()]
        if status:
            clauses.append(f"attributes.status = '{status}'")
        return self.search(" and ".join(clauses))

    def read_runs(self, kind: str, status: str | None = None) -> list[RunRecord]:
        """All runs of a kind, for reading many at once (the reports): the same records as :meth:`runs`.

        On a SQL store (the default SQLite file, PostgreSQL, ...) they are read straight from MLflow's
        ``runs``, ``params``, ``tags`` and ``latest_metrics`` tables in four queries: ``search_runs`` builds
        an ORM object per param, tag and metric, about 2.6 s per 1,000 runs of a real study on one core,
        where the tables answer in a tenth of that. Other stores, and a SQL store whose tables do not have
        the expected shape, go through :meth:`runs`. ``tests/reports/test_tracking_bulk.py`` checks that
        both paths give the same records.
        """
        if self.uri.split(":", 1)[0].split("+", 1)[0] in _SQL_SCHEMES:
            try:
                return self._sql_runs(kind, status)
            except SQLAlchemyError:
                pass  # not the schema this reader knows: the API gives the same answer, slower
        return self.runs(kind, status)

    def _sql_runs(self, kind: str, status: str | None) -> list[RunRecord]:
        if self._engine is None:
            self._engine = create_engine(self.uri)
        # MLflow's own filter (active runs of the experiment with the tag) and order (newest first, then id)
        selected = (
            "SELECT r.run_uuid FROM runs r JOIN tags k ON k.run_uuid = r.run_uuid "
            "AND k.key = 'gemo.kind' AND k.value = :kind "
            "WHERE r.experiment_id = :experiment AND r.lifecycle_stage = 'active'"
            + (" AND r.status = :status" if status else "")
        )
        bind = {"kind": kind, "experiment": int(self.experiment_id), "status": status}
        bind = {k: v for k, v in bind.items() if v is not None}
        with self._engine.connect() as db:
            head = db.execute(
                sql_text(
                    "SELECT run_uuid, status, start_time, artifact_uri, end_time FROM runs WHERE run_uuid IN "
                    f"({selected}) ORDER BY start_time DESC, run_uuid"
                ),
                bind,
            ).all()
            found: dict[str, dict[str, dict]] = {r[0]: {"params": {}, "tags": {}, "metrics": {}} for r in head}
            for table, slot in (("params", "params"), ("tags", "tags")):
                query = f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({selected})"
                for run_id, key, value in db.execute(sql_text(query), bind):
                    found[run_id][slot][key] = value
            query = f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({selected})"
            for run_id, key, value, is_nan in db.execute(sql_text(query), bind):
                found[run_id]["metrics"][key] = float("nan") if is_nan else float(value)
        return [
            RunRecord(
                run_id=run_id,
                status=run_status,
                params=found[run_id]["params"],
                metrics=found[run_id]["metrics"],
                tags=found[run_id]["tags"],
                start_time=start_time,
                artifact_uri=artifact_uri or "",
                end_time=end_time,
            )
            for run_id, run_status, start_time, artifact_uri, end_time in head
        ]

    def read_histories(
        self, runs: Iterable[RunRecord], keys: Sequence[str]
    ) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """Every step of metrics ``keys`` of each run: ``{run_id: {key: [(step, value), ...]}}``, steps ascending.

        A step logged more than once keeps its latest value. A SQL store answers from MLflow's ``metrics``
        table in a few queries (chunks of run ids); other stores, or tables of another shape, give the same
        answer through ``get_metric_history``, one call per run and key in a small thread pool.
        """
        runs, keys = list(runs), list(keys)
        if not runs or not keys:
            return {r.run_id: {} for r in runs}
        if self.uri.split(":", 1)[0].split("+", 1)[0] in _SQL_SCHEMES:
            try:
                return self._sql_histories([r.run_id for r in runs], keys)
            except SQLAlchemyError:
                pass
        return self._api_histories([r.run_id for r in runs], keys)

    def _sql_histories(self, run_ids: list[str], keys: list[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
        if self._engine is None:
            self._engine = create_engine(self.uri)
        query = sql_text(
            "SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid IN :ids AND key IN :keys"
        ).bindparams(bindparam("ids", expanding=True), bindparam("keys", expanding=True))
        latest: dict[tuple[str, str, int], tuple[int, float]] = {}
        with self._engine.connect() as db:
            for start in range(0, len(run_ids), 500):  # under every SQL dialect's bound-parameter limit
                chunk = run_ids[start : start + 500]
                for run_id, key, step, stamp, value, is_nan in db.execute(query, {"ids": chunk, "keys": keys}):
                    value = float("nan") if is_nan else float(value)
                    slot = (run_id, key, int(step))
                    if slot not in latest or stamp >= latest[slot][0]:
                        latest[slot] = (stamp, value)
        return _histories(run_ids, ((r, k, step, v) for (r, k, step), (_, v) in latest.items()))

    def _api_histories(self, run_ids: list[str], keys: list[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
        def one(pair: tuple[str, str]):
            run_id, key = pair
            latest: dict[int, tuple[int, float]] = {}
            for m in self.client.get_metric_history(run_id, key):
                if m.step not in latest or m.timestamp >= latest[m.step][0]:
                    latest[m.step] = (m.timestamp, m.value)
            return [(run_id, key, step, v) for step, (_, v) in latest.items()]

        pairs = [(r, k) for r in run_ids for k in keys]
        with ThreadPoolExecutor(max_workers=8) as pool:
            return _histories(run_ids, (row for rows in pool.map(one, pairs) for row in rows))

    def finished_cells(self) -> set[str]:
        return {r.tags["gemo.cell_id"] for r in self.runs("cell", "FINISHED")}

    def lagging_parents(self) -> list[tuple[str, str]]:
        """``(parent run id, config id)`` of every parent whose aggregate misses some of its finished folds.

        That happens when a process dies between ending a fold's run and updating its parent. Two bulk
        queries, whatever the size of the study.
        """
        finished = Counter(r.tags.get("gemo.config_id", "") for r in self.runs("cell", "FINISHED"))
        out = []
        for parent in self.runs("config"):
            config_id = parent.tags.get("gemo.config_id", "")
            done = finished[config_id]
            if parent.metrics.get("folds", 0.0) != done or parent.tags.get("gemo.folds_done", "0") != str(done):
                out.append((parent.run_id, config_id))
        return out

    def read_artifacts(self, runs: Iterable[RunRecord], path: str) -> dict[str, bytes]:
        """The bytes of artifact ``path`` of each run that has it (``{run_id: bytes}``), in bulk.

        Runs whose artifacts live on a local disk (the default SQLite store) are read in place, without a
        query or a copy per run; other stores are downloaded by a small thread pool. A run without the
        file is left out of the answer, so callers can name what is missing.
        """
        runs = list(runs)
        out: dict[str, bytes] = {}
        remote = []
        for r in runs:
            folder = _local_artifact_dir(r.artifact_uri)
            if folder is None:
                remote.append(r)
                continue
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                out[r.run_id] = (folder / path).read_bytes()
        if remote:
            with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=8) as pool:
                for run_id, data in pool.map(lambda r: (r.run_id, self._download(r.run_id, path, tmp)), remote):
                    if data is not None:
                        out[run_id] = data
        return out

    def _download(self, run_id: str, path: str, tmp: str) -> bytes | None:
        dst = Path(tmp) / run_id
        dst.mkdir()
        try:
            return Path(self.client.download_artifacts(run_id, path, str(dst))).read_bytes()
        except (MlflowException, OSError):
            return None

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str) -> None:
        """Log the given files (not their folder's other files) under ``artifact_path`` in one upload."""
        with tempfile.TemporaryDirectory() as tmp:
            for f in files:
                shutil.copyfile(f, Path(tmp) / f.name)
            self.client.log_artifacts(run_id, tmp, artifact_path)

    # ---- writing ---------------------------------------------------------------------------------------

    def mark_stale(self, cell_id: str) -> int:
        """Mark RUNNING runs of a cell as KILLED; call only while holding the cell's lock (nobody runs it)."""
        stale = self.runs("cell", "RUNNING", cell_id=cell_id)
        for r in stale:
            self.client.set_tag(r.run_id, "gemo.end_reason", "process died before the cell finished")
            self.client.set_terminated(r.run_id, "KILLED")
        return len(stale)

    def parent(self, config_id: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """The configuration's parent run, created on first use (call under the configuration's lock)."""
        found = self.runs("config", config_id=config_id)
        if found:
            if found[0].status != "FINISHED":
                # a process died while creating it: finish the job (logging the same params again is allowed)
                self._log(found[0].run_id, params=params)
                self.client.set_terminated(found[0].run_id, "FINISHED")
            return found[0].run_id
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={**tags, "gemo.kind": "config", "gemo.config_id": config_id}
        )
        self._log(run.info.run_id, params=params)
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def start_cell(self, parent_id: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        tags = {
            **tags,
            "gemo.kind": "cell",
            PARENT_TAG: parent_id,
            "gemo.pid": str(os.getpid()),
            "gemo.host": socket.gethostname(),
        }
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        self._log(run_id, metrics=metrics, step=step)

    def log_steps(self, run_id: str, steps: Mapping[int, Mapping[str, float]]) -> None:
        """Metrics of many steps (``{step: {key: value}}``) in one call, as a history written after the fact."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for step, values in steps.items() for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit on metrics per batch
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def end(self, run_id: str, status: str = "FINISHED", reason: str = "") -> None:
        if reason:
            self.client.set_tag(run_id, "gemo.end_reason", reason[:5000])
        self.client.set_terminated(run_id, status)

    def update_parent(self, parent_id: str, config_id: str) -> dict[str, float]:
        """Recompute the parent's mean and std over its finished folds (call under the config's lock)."""
        children = self.runs("cell", "FINISHED", config_id=config_id)
        summary = fold_summary([c.metrics for c in children])
        self._log(parent_id, metrics=summary)
        self.client.set_tag(parent_id, "gemo.folds_done", str(len(children)))
        return summary

    def open_search(self, search_id: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """The search's parent run: created once, RUNNING while a search command works on it.

        Opened by the coordinating process before any worker starts, so workers only nest runs under it.
        """
        found = self.runs("search", search_id=search_id)
        if found:
            if found[0].status != "RUNNING":
                self.client.update_run(found[0].run_id, status="RUNNING")
            return found[0].run_id
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={**tags, "gemo.kind": "search", "gemo.search_id": search_id}
        )
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def start_child(
        self, kind: str, parent_id: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        """A RUNNING run nested under ``parent_id`` (``gemo.kind = kind``), e.g. one search trial."""
        tags = {
            **tags,
            "gemo.kind": kind,
            PARENT_TAG: parent_id,
            "gemo.pid": str(os.getpid()),
            "gemo.host": socket.gethostname(),
        }
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def study_run(self, name: str, tags: Mapping[str, str]) -> str:
        """The study's own run (reports are logged there), created once."""
        found = self.runs("study")
        if found:
            return found[0].run_id
        run = self.client.create_run(
            self.experiment_id, run_name=f"{name} (study)", tags={**tags, "gemo.kind": "study"}
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def _log(
        self, run_id: str, *, metrics: Mapping[str, float] = {}, params: Mapping[str, Any] = {}, step: int = 0
    ) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
            params=[Param(k, _param(v)) for k, v in params.items()],
        )


FOLD_METRICS = ("test_war", "test_uar", "test_war_F", "test_uar_F", "test_war_M", "test_uar_M")


def write_pyfunc_description(folder: Path, loader_module: str) -> None:
    """Make ``folder`` an MLflow model: an ``MLmodel`` file whose python_function flavour loads through
    ``loader_module._load_pyfunc(folder)`` (no pickled objects), so ``mlflow.pyfunc.load_model`` reads it."""
    import warnings

    from mlflow.models import Model

    with warnings.catch_warnings():
        # importing mlflow.pyfunc warns about the type hints of MLflow's own agent classes (MLflow 3.x)
        warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType", category=UserWarning)
        from mlflow.pyfunc import add_to_model

    description = Model()
    add_to_model(description, loader_module=loader_module, data=".")
    description.save(str(folder / "MLmodel"))


def download(artifact_uri: str, tracking_uri: str, dst: Path) -> Path:
    """Download an artifact (``runs:/<run id>/model``) from the store at ``tracking_uri`` into ``dst``.

    Raises:
        StoreError: the run or the artifact does not exist, or the store cannot be read (named).
    """
    import mlflow.artifacts

    from benchmark.provenance import redact_uri

    try:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst), tracking_uri=tracking_uri)
        )
    except (MlflowException, OSError) as exc:
        raise StoreError(f"{artifact_uri}: could not download it from {redact_uri(tracking_uri)} ({exc})") from exc


def fold_summary(child_metrics: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean and sample std (ddof=1; 0 with one fold) over folds of each final test metric."""
    import numpy as np

    rows = list(child_metrics)
    out: dict[str, float] = {"folds": float(len(rows))}
    for key in FOLD_METRICS:
        values = np.array([r[key] for r in rows if key in r], dtype=float)
        if len(values):
            short = key.removeprefix("test_")
            out[f"{short}_mean"] = float(values.mean())
            out[f"{short}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def _check_writable(store: Path, uri: str) -> None:
    """Create ``store`` if needed and prove that a file can be written there, or raise :class:`StoreError`.

    Checked by writing, not by permission bits: root ignores those, and a read-only mount or a full disk
    does not show in them.
    """
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{store}: the MLflow store ({uri}) is not writable: {exc.strerror or exc}") from exc
    problem = probe_writable(store)
    if problem is not None:
        raise StoreError(f"{store}: the MLflow store ({uri}) is not writable: {problem}")


def probe_writable(folder: Path) -> str | None:
    """None if a file can be written in ``folder`` (or, if it does not exist yet, in its nearest existing
    ancestor, where it would be created); else the OS reason. The probe file is deleted at once."""
    target = Path(folder)
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        return f"{target} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=target) as probe:
            probe.write(b"gemo-bench")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _param(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, list | tuple | dict) else str(v)
    return text[:6000]


def _local_artifact_dir(uri: str) -> Path | None:
    """The folder of a run's artifacts when it is on a local disk (``file:`` URI or a bare path)."""
    if uri.startswith("file:"):
        return Path(url2pathname(urlsplit(uri).path))
    if uri.startswith("/"):
        return Path(uri)
    return None


def _histories(run_ids: list[str], rows: Iterable[tuple[str, str, int, float]]):
    out: dict[str, dict[str, list[tuple[int, float]]]] = {r: {} for r in run_ids}
    for run_id, key, step, value in rows:
        out[run_id].setdefault(key, []).append((step, value))
    for series in out.values():
        for values in series.values():
            values.sort()
    return out


def _record(run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        status=run.info.status,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        start_time=run.info.start_time,
        artifact_uri=run.info.artifact_uri or "",
        end_time=run.info.end_time,
    )
