"""Optuna searches over alpha_e, the temperature and the learning rate (a study's ``[search]`` table).

A study holds one search per audio encoder x variant: an Optuna study named ``<study>:<encoder>:<variant>``
in the search's storage, and an MLflow parent run with a nested run per trial.

- **Objective**: the mean over ``search.folds`` of each fold's best validation UAR. Trials only *fit*
  cells (``train.fit_cell``): the test sessions are never scored during a search. After epoch ``e`` of
  the ``k``-th fold (0-based) the trial reports, at step ``k * epochs + e``, the mean best validation UAR
  of the folds so far (the current one's best so far), and the pruner may stop it there.
- **Storage**: a journal file by default (``.gemo/optuna/<study>.journal`` beside the MLflow store; safe
  for many processes on one machine or a shared file system), or any SQLAlchemy URL (PostgreSQL for
  many machines). Both get Optuna's heartbeat: a running trial records a heartbeat every
  ``heartbeat_s``; one silent for ``grace_s`` (its worker died) is failed and retried with the same
  parameters (``RetryHeartbeatStaleTrialCallback``, at most ``max_retry`` times). A trial stopped by
  Ctrl-C is retried the same way on the next run. Optuna's RDB storage has the heartbeat built in; the
  journal storage gets it from :class:`HeartbeatJournalStorage`.
- **Exactly ``trials`` trials**: workers claim a trial under one lock (a file lock beside a journal or
  SQLite file, a PostgreSQL advisory lock) after counting the finished and running ones, so N workers
  neither stop short nor overshoot, and a search resumed with ``load_if_exists`` runs only the missing
  trials. A worker with nothing left to claim waits for the running trials (a dead worker's trial turns
  stale after ``grace_s`` and is retried) so that nothing is left RUNNING when the command returns.
- **MLflow** (through ``benchmark.tracking``): the experiment and the search's parent run are opened by
  the coordinating process before any worker starts; each worker nests one run per trial under it.
- **Best configuration**: once every trial has finished, the best trial's values are run as an ordinary
  configuration on every ``protocol`` fold and seed through the runner (test sessions scored once,
  resumable), and a ``search-best`` run under the search's parent points at it.

Workers are local processes (``--workers N``, pinned one per GPU when several are visible) or the tasks
of a Slurm job array (``executor.kind = "slurm"``, through submitit).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from benchmark import provenance
from benchmark.config import CellSpec, TrainConfig
from benchmark.data.records import GENDERS
from benchmark.executors import ExecutorSpec, TaskOutcome, run_array
from benchmark.losses import NonFiniteLossError
from benchmark.models.presets import default_lr
from benchmark.runner import (
    Context,
    RunSummary,
    cell_tags,
    config_params,
    hold_lock,
    prepare,
    run_name,
    run_study,
    state_dir,
)
from benchmark.search_store import (
    GAP_ATTR,
    SEARCHED,
    Counts,
    SearchError,
    Target,
    best_trial,
    count_trials,
    gap_value,
    is_journal,
    open_storage,
    pareto_front,
    retry_callback,
    search_folds,
    search_id,
    storage_url,
    targets,
    trial_budget,
    uar_value,
)
from benchmark.stopping import stop_exit_code, stop_name, stop_on_sigterm, stop_workers
from benchmark.studies import SearchSpec, Study, config_id
from benchmark.train import EpochStats, Fit, fit_cell

INTERRUPTED_ATTR = "gemo_interrupted"
RUN_ID_ATTR = "mlflow_run_id"
CLAIM_POLL_S = 1.0


class Claim:
    """The lock under which a worker counts trials and creates one; released as its objective starts."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._fd: int | None = None
        self._conn = None
        path = _claim_file(url)
        self._path = path.parent / f"{path.name}.{self._key & 0xFFFFFFFF:08x}.claim" if path else None

    def acquire(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            return
        import sqlalchemy

        # A session-level advisory lock: the server drops it when the connection (the worker) dies.
        engine = sqlalchemy.create_engine(self._url, poolclass=sqlalchemy.pool.NullPool)
        self._conn = engine.connect()
        self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            import sqlalchemy

            conn, self._conn = self._conn, None
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            finally:
                conn.close()

    @contextlib.contextmanager
    def held(self) -> Iterator[Claim]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()


def _claim_file(url: str) -> Path | None:
    """The file to lock for ``url``'s claims, or None for a PostgreSQL advisory lock."""
    if is_journal(url):
        return Path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if url.split("://", 1)[0].split("+")[0] in ("postgresql", "postgres"):
        return None
    # Other servers: a lock beside the working directory keeps one machine's workers exact.
    return Path.cwd() / ".gemo" / "optuna" / "rdb"


def fail_stale(ostudy: optuna.Study, retry: RetryHeartbeatStaleTrialCallback) -> None:
    """Fail stale RUNNING trials (their worker died) and retry them and interrupted ones, once each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(ostudy)
    trials = ostudy.get_trials(deepcopy=False)
    replaced = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED_ATTR) and t.number not in replaced:
            retry(ostudy, copy.deepcopy(t))


# ---- one trial ----------------------------------------------------------------------------------------------


def configured(study: Study, target: Target, values: dict[str, float], folds, seeds) -> Study:
    """``study`` narrowed to one configuration: the target's encoder and variant with ``values``."""
    gender_aware = target.variant != "emo-clap"
    return replace(
        study,
        encoders=replace(study.encoders, audio=(target.audio_encoder,)),
        method=replace(
            study.method,
            variants=(target.variant,),
            alphas=(values["alpha"],) if gender_aware else study.method.alphas,
        ),
        model=replace(study.model, temperature=values["temperature"]),
        train={**study.train, "lr": values["lr"]},
        protocol=replace(study.protocol, folds=tuple(folds), seeds=tuple(seeds)),
    )


def suggest(trial: optuna.Trial, study: Study, target: Target) -> dict[str, float]:
    """The trial's alpha, temperature and lr: sampled where the spec gives a range, else fixed."""
    space = study.search.space()
    defaults = {
        "alpha": 1.0,
        "temperature": study.model.temperature,
        "lr": float(study.train.get("lr", default_lr(target.audio_encoder))),
    }
    values = {}
    for name in SEARCHED:
        rng = space[name]
        if name == "alpha" and target.variant == "emo-clap":
            values[name] = 1.0  # Emo-CLAP has no alpha
        elif isinstance(rng, tuple):
            values[name] = trial.suggest_float(name, rng[0], rng[1], log=name != "alpha")
        else:
            values[name] = float(defaults[name] if rng is None else rng)
    return values


class Objective:
    """Mean best validation UAR over the search folds, for one trial; logs the trial's MLflow run."""

    def __init__(
        self, ctx: Context, study: Study, target: Target, parent_run_id: str, search_id: str, worker: int = 0
    ) -> None:
        self.ctx = ctx
        self.worker = worker
        self.study = study
        self.target = target
        self.parent_run_id = parent_run_id
        self.search_id = search_id
        self.folds = search_folds(study)
        self.seed = study.protocol.seeds[0]

    def cells(self, values: dict[str, float]) -> list[CellSpec]:
        return configured(self.study, self.target, values, self.folds, (self.seed,)).cells()

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        # a trial counts as interrupted until it ends otherwise, so that Ctrl-C or SIGTERM anywhere in it (while
        # its run is being created, say) has it retried rather than counted as a finished failure
        trial.set_user_attr(INTERRUPTED_ATTR, True)
        tracker = self.ctx.tracker
        run_id = None
        try:
            values = suggest(trial, self.study, self.target)
            cells = self.cells(values)
            params = {**config_params(cells[0], self.ctx), "trial": trial.number, "folds": list(self.folds)}
            tags = {
                **cell_tags(self.ctx, cells[0]),
                "gemo.search_id": self.search_id,
                "gemo.optuna_study": self.target.study_name,
                "gemo.trial_number": str(trial.number),
                "gemo.worker": str(self.worker),
            }
            name = f"trial {trial.number}: " + " ".join(f"{k}={v:.3g}" for k, v in values.items())
            run_id = tracker.start_child("trial", self.parent_run_id, name, params, tags)
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            uar, gap = self._fit_folds(trial, cells, run_id)
        except optuna.TrialPruned:
            trial.set_user_attr(INTERRUPTED_ATTR, False)
            tracker.client.set_tag(run_id, "gemo.trial_state", "PRUNED")
            tracker.end(run_id, "FINISHED")
            raise
        except KeyboardInterrupt as exc:
            # retried with the same values by the next run (see fail_stale)
            if run_id is not None:
                tracker.end(run_id, "KILLED", f"interrupted ({stop_name(exc)}); the next run retries the trial")
            raise
        except BaseException as exc:
            trial.set_user_attr(INTERRUPTED_ATTR, False)
            if run_id is not None:
                tracker.client.set_tag(run_id, "gemo.trial_state", "FAIL")
                tracker.end(run_id, "FAILED", f"{type(exc).__name__}: {exc}")
            raise
        trial.set_user_attr(GAP_ATTR, gap)
        tracker.log_metrics(run_id, {"objective": uar, GAP_ATTR: gap}, step=len(self.folds) * cells[0].train.epochs)
        tracker.client.set_tag(run_id, "gemo.trial_state", "COMPLETE")
        tracker.end(run_id, "FINISHED")
        trial.set_user_attr(INTERRUPTED_ATTR, False)
        return (uar, gap) if self.study.search.multi_objective else uar

    def _fit_folds(self, trial: optuna.Trial, cells: list[CellSpec], run_id: str) -> tuple[float, float]:
        """(mean best validation UAR, mean validation gender gap at each fold's chosen epoch) over the folds."""
        tracker = self.ctx.tracker
        prune = not self.study.search.multi_objective  # Optuna takes no intermediate values from those
        best: list[float] = []
        gaps: list[float] = []
        for k, cell in enumerate(cells):
            fold_best = [-math.inf]

            def on_epoch(s: EpochStats, k: int = k, cell: CellSpec = cell, fold_best=fold_best) -> None:
                fold_best[0] = max(fold_best[0], s.val_uar)
                step = k * cell.train.epochs + s.epoch
                running = float(sum(best) + fold_best[0]) / (len(best) + 1)
                metrics = {"val_uar": s.val_uar, "val_war": s.val_war, "train_loss": s.train_loss}
                metrics |= {f"val_uar_{g}": v for g, v in s.val_uar_by_gender.items()}
                tracker.log_metrics(run_id, {**metrics, "intermediate": running}, step)
                if prune:
                    trial.report(running, step)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"fold {cell.fold}, epoch {s.epoch}: running value {running:.4f}")

            fit = fit_cell(self.ctx.records, cell, progress=False, on_epoch=on_epoch)
            best.append(fit.best_val_uar)
            gaps.append(validation_gap(fit, self.study))
            fold_metrics = {f"val_uar_fold{cell.fold}": fit.best_val_uar, f"{GAP_ATTR}_fold{cell.fold}": gaps[-1]}
            for key, v in fold_metrics.items():
                trial.set_user_attr(key, v)
            tracker.log_metrics(run_id, fold_metrics)
        return float(sum(best) / len(best)), float(sum(gaps) / len(gaps))


def validation_gap(fit: Fit, study: Study) -> float:
    """|UAR_F - UAR_M| on the fold's validation split at the chosen epoch.

    Raises:
        SearchError: the validation split lacks one gender and the gap is an objective (NaN otherwise).
    """
    by_gender = next(h for h in fit.history if h.epoch == fit.best_epoch).val_uar_by_gender
    if set(by_gender) >= set(GENDERS):
        return abs(by_gender["F"] - by_gender["M"])
    if study.search.multi_objective:
        missing = ", ".join(g for g in GENDERS if g not in by_gender)
        raise SearchError(
            f"{study.path or study.name}: search.objectives: fold {fit.spec.fold}'s validation split has no "
            f"utterances of gender {missing}, so the gender gap cannot be an objective"
        )
    return math.nan


# ---- workers ------------------------------------------------------------------------------------------------


def make_sampler(spec: SearchSpec, trial_number: int) -> optuna.samplers.BaseSampler:
    """The sampler for trial ``trial_number``, seeded from (``search.seed``, the trial's number).

    A seed per trial, not per worker: identically seeded workers, or a resumed search starting its
    sampler afresh, would propose the points already tried. The samplers keep no state besides their
    random generator (TPE models the finished trials read from the storage), so a fresh one per trial
    loses nothing, and one worker replays the same sequence.
    """
    seed = None
    if spec.seed is not None:
        seed = int(np.random.SeedSequence([spec.seed, trial_number]).generate_state(1)[0])
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.startup_trials)


def make_pruner(spec: SearchSpec, steps: int) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_epochs)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, steps))
    return optuna.pruners.NopPruner()


class _InterruptWithoutTraceback(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C as a warning with the whole traceback: keep its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info
        if exc and exc[0] is not None and issubclass(exc[0], KeyboardInterrupt):
            record.exc_info = record.exc_text = None
        return True


def _quiet_interrupted_trials() -> None:
    log = logging.getLogger("optuna.study._optimize")  # where Optuna reports a failed trial
    if not any(isinstance(f, _InterruptWithoutTraceback) for f in log.filters):
        log.addFilter(_InterruptWithoutTraceback())


def search_worker(study: Study, worker: int, parents: dict[str, str]) -> dict[str, int]:
    """Run trials of each of the study's searches until each has its finished trials (``trial_budget``).

    Args:
        study: the study (its ``[search]`` table).
        worker: this worker's index (tagged on its trial runs, ``gemo.worker``).
        parents: each search's MLflow parent run id, by Optuna study name (opened by the coordinator).

    Returns:
        Trials this worker ran, by Optuna study name.
    """
    _quiet_interrupted_trials()
    ctx = prepare(study)
    url = storage_url(study)
    storage = open_storage(study.search, url)
    retry = retry_callback(study.search.max_retry)
    ran: dict[str, int] = {}
    for target in targets(study):
        budget = trial_budget(study, target)
        epochs = TrainConfig(**{"lr": 1.0, **study.train}).epochs
        ostudy = optuna.load_study(
            study_name=target.study_name,
            storage=storage,
            pruner=make_pruner(study.search, len(search_folds(study)) * epochs),
        )
        sid = search_id(url, target)
        objective = Objective(ctx, study, target, parents[target.study_name], sid, worker)
        claim = Claim(url, target.study_name)
        ran[target.study_name] = 0
        while True:
            with claim.held():
                fail_stale(ostudy, retry)
                end_orphan_runs(ctx, sid, ostudy)
                trials = ostudy.get_trials(deepcopy=False)
                counts = count_trials(trials)
                if counts.done >= budget:
                    break
                start = counts.done + counts.running < budget
                if start:
                    ostudy.sampler = make_sampler(study.search, len(trials))  # the next trial's number
                    _one_trial(ostudy, objective, claim, ctx)
                    ran[target.study_name] += 1
            if not start:  # the last trials run elsewhere: wait for them (or for them to turn stale)
                time.sleep(CLAIM_POLL_S)
    return ran


def _one_trial(ostudy: optuna.Study, objective: Objective, claim: Claim, ctx: Context) -> None:
    mine: list[optuna.Trial] = []

    def claimed(trial: optuna.Trial) -> float:
        claim.release()  # the trial exists now and counts as running: others may claim the next one
        mine.append(trial)
        return objective(trial)

    try:
        # NaN losses end the trial as FAIL (it counts); any other error stops this worker.
        ostudy.optimize(claimed, n_trials=1, catch=(NonFiniteLossError,), gc_after_trial=True)
    except UpdateFinishedTrialError:
        # Another worker found this trial's heartbeat late and failed it; its retry runs instead.
        run_id = mine[0].user_attrs.get(RUN_ID_ATTR) if mine else None
        if run_id:
            ctx.tracker.end(run_id, "KILLED", "failed by another worker: no heartbeat within grace_s")


def end_orphan_runs(ctx: Context, sid: str, ostudy: optuna.Study) -> int:
    """End every RUNNING trial run of the search whose Optuna trial is no longer running."""
    states = {t.number: t.state for t in ostudy.get_trials(deepcopy=False)}
    ended = 0
    for run in ctx.tracker.runs("trial", "RUNNING", search_id=sid):
        state = states.get(int(run.tags.get("gemo.trial_number", "-1")))
        if state != TrialState.RUNNING:
            ctx.tracker.end(run.run_id, "KILLED", f"its worker died or was stopped (trial state {state})")
            ended += 1
    return ended


def search_worker_task(study: Study, worker: int, parents: dict[str, str]) -> dict[str, int]:
    """One job-array task (``executor.kind`` slurm or submitit-local): one search worker."""
    from benchmark.models.quiet import silence_known_warnings

    silence_known_warnings()
    return search_worker(study, worker, parents)


def _worker_process(study: Study, worker: int, parents: dict[str, str], gpu: str | None, workers: int) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before torch touches CUDA in this process
    import torch

    from benchmark.models.quiet import silence_known_warnings

    silence_known_warnings()
    stop_on_sigterm()
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        search_worker(study, worker, parents)
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM: the trial in training is marked interrupted; the coordinator says what to do
        sys.exit(stop_exit_code(exc))


# ---- the whole search ---------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """One finished search: its trials, the best one, and the best configuration's test-fold figures."""

    target: Target
    counts: Counts
    best_trial: int | None = None
    best_value: float | None = None
    best_values: dict[str, float] = field(default_factory=dict)
    evaluation: RunSummary | None = None
    test: dict[str, float] = field(default_factory=dict)
    parent_run_id: str = ""
    worker_errors: list[str] = field(default_factory=list)
    best_gap: float | None = None  # the best trial's mean validation gender gap
    front: list[FrontPoint] = field(default_factory=list)  # multi-objective: the Pareto front, by UAR


@dataclass
class FrontPoint:
    """One trial of a multi-objective search's Pareto front, and its configuration's test-fold figures."""

    trial: int
    uar: float  # mean best validation UAR
    gap: float  # mean validation gender gap |UAR_F - UAR_M|
    values: dict[str, float]
    test: dict[str, float] = field(default_factory=dict)


def search_config(study: Study, target: Target, fingerprint: str) -> dict[str, Any]:
    """What a search's trials depend on; a stored search made for another configuration is refused."""
    return {
        "target": [target.audio_encoder, target.variant],
        "space": {k: list(v) if isinstance(v, tuple) else v for k, v in study.search.space().items()},
        "folds": list(search_folds(study)),
        "seed": study.protocol.seeds[0],
        "text_encoder": study.encoders.text,
        "ml_mode": study.method.ml_mode,
        "target_norm": study.method.target_norm,
        "model": json.loads(json.dumps(study.model.__dict__, default=list)),
        "train": dict(sorted(study.train.items())),
        "data": fingerprint,
        # only when not the default, so that searches stored before the key existed still match
        **({"objectives": list(study.search.objectives)} if study.search.multi_objective else {}),
    }


def open_search(study: Study, ctx: Context, storage: BaseStorage, url: str, target: Target) -> str:
    """Create or resume the target's Optuna study and MLflow parent run; returns the parent run id."""
    config = json.loads(json.dumps(search_config(study, target, ctx.fingerprint)))
    directions = ["maximize", "minimize"] if study.search.multi_objective else ["maximize"]
    ostudy = optuna.create_study(
        storage=storage, study_name=target.study_name, directions=directions, load_if_exists=True
    )
    stored = ostudy.user_attrs.get("gemo.config")
    if stored is None:
        ostudy.set_user_attr("gemo.config", config)
    elif stored != config:
        changed = sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
        raise SearchError(
            f"{study.path or study.name}: the Optuna study {target.study_name!r} in "
            f"{provenance.redact_uri(url)} was made for another configuration (changed: {', '.join(changed)}); "
            "its trials would not be comparable. Rename the study (name = ...) or point search.storage "
            "elsewhere to start a new search."
        )
    sid = search_id(url, target)
    params = {
        "audio_encoder": target.audio_encoder,
        "variant": target.variant,
        "search.space": config["space"],
        "search.folds": config["folds"],
        "search.sampler": study.search.sampler,
        "search.pruner": study.search.pruner,
        "search.objectives": list(study.search.objectives),
        "search.storage": provenance.redact_uri(url),
    }
    tags = {
        **provenance.tags(),
        "gemo.study": study.name,
        "gemo.optuna_study": target.study_name,
        "gemo.data_fingerprint": ctx.fingerprint,
    }
    with hold_lock(ctx.lock_dir / f"search-{sid}.lock"):
        return ctx.tracker.open_search(sid, f"search {target.audio_encoder} {target.variant}", params, tags)


def run_search(
    study: Study,
    *,
    workers: int = 1,
    executor: ExecutorSpec | None = None,
    evaluate: bool = True,
    progress: bool = True,
) -> list[SearchResult]:
    """Run (or resume) every search of ``study`` to ``search.trials`` finished trials, then evaluate the best.

    A search that samples nothing (Emo-CLAP with temperature and lr fixed, say) runs one trial: every
    other would train the same configuration (``trial_budget``).

    Args:
        study: a study; its ``[search]`` table gives the space, the budget and the storage.
        workers: search workers: local processes (one per GPU when several are visible) or array tasks.
        executor: where workers run (default: the study's ``[executor]``).
        evaluate: run the best configuration on every protocol fold and seed afterwards.
        progress: progress bars for the best configuration's cells.

    Returns:
        One result per search. Workers that died are listed in ``worker_errors`` when the others still
        finished every trial (their trials were retried).

    Raises:
        SearchError: the storage cannot be opened, or holds a search made for another configuration.
        RuntimeError: workers failed and trials are missing (running the command again resumes).
    """
    executor = executor or study.executor
    # The coordinator creates the experiment, the Optuna studies and the parent runs before any worker
    # starts, so workers never race to create them.
    ctx = prepare(study)
    url = storage_url(study)
    storage = open_storage(study.search, url)
    parents = {t.study_name: open_search(study, ctx, storage, url, t) for t in targets(study)}

    errors: list[str] = []
    if executor.kind != "local":
        folder = Path(executor.folder) if executor.folder else state_dir(ctx.tracker.uri) / "submitit"
        outcomes: list[TaskOutcome] = run_array(
            search_worker_task,
            [(study, i, parents) for i in range(workers)],
            executor,
            folder,
            f"gemo-search-{study.name}",
        )
        errors = [f"worker {o.index} (job {o.job_id}): {o.error}" for o in outcomes if o.error]
    elif workers <= 1:
        search_worker(study, 0, parents)
    else:
        errors = _run_local_workers(study, workers, parents)
    if errors:
        short = []
        for t in targets(study):
            counts = count_trials(optuna.load_study(study_name=t.study_name, storage=storage).get_trials())
            if counts.done < trial_budget(study, t) or counts.running:
                short.append(f"{t.study_name}: {counts.done} of {trial_budget(study, t)} trials finished")
        if short:
            raise RuntimeError(
                "search workers failed:\n  " + "\n  ".join([*errors, *short]) + "\nrun the same command again to resume"
            )

    evaluation = (workers, executor, progress) if evaluate else None
    results = [_finish(study, ctx, storage, url, t, parents[t.study_name], evaluation) for t in targets(study)]
    for r in results:
        r.worker_errors = errors
    return results


def _run_local_workers(study: Study, workers: int, parents: dict[str, str]) -> list[str]:
    from benchmark.runner import _gpu_ids

    spawn = mp.get_context("spawn")
    gpus = _gpu_ids()
    procs = []
    for i in range(workers):
        gpu = gpus[i % len(gpus)] if len(gpus) > 1 else None
        procs.append(spawn.Process(target=_worker_process, args=(study, i, parents, gpu, workers)))
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt as exc:
        stop_workers(procs, exc)  # they mark their trials interrupted
        raise
    return [f"worker {i} exited with code {p.exitcode}" for i, p in enumerate(procs) if p.exitcode != 0]


def _finish(
    study: Study,
    ctx: Context,
    storage: BaseStorage,
    url: str,
    target: Target,
    parent_id: str,
    evaluation: tuple[int, ExecutorSpec, bool] | None,
) -> SearchResult:
    ostudy = optuna.load_study(study_name=target.study_name, storage=storage)
    sid = search_id(url, target)
    end_orphan_runs(ctx, sid, ostudy)
    trials = ostudy.get_trials(deepcopy=False)
    result = SearchResult(target, count_trials(trials), parent_run_id=parent_id)
    best = best_trial(trials)
    tracker = ctx.tracker
    summary = {
        "trials_complete": result.counts.complete,
        "trials_pruned": result.counts.pruned,
        "trials_failed": result.counts.failed,
    }
    if best is not None:
        result.best_trial, result.best_value, result.best_gap = best.number, uar_value(best), gap_value(best)
        result.best_values = _values_of(best, study, target)
        summary["best_objective"] = result.best_value
        if math.isfinite(result.best_gap):
            summary[f"best_{GAP_ATTR}"] = result.best_gap
        tracker.set_tags(parent_id, {"gemo.best_trial": str(best.number)})
        # a multi-objective search tests every configuration of its front; a single-objective one its best
        chosen = (pareto_front(trials) or [best]) if study.search.multi_objective else [best]
        if study.search.multi_objective:
            summary["front_size"] = len(chosen)
            tracker.set_tags(parent_id, {"gemo.front_trials": ",".join(str(t.number) for t in chosen)})
        for trial in chosen:
            point = FrontPoint(trial.number, uar_value(trial), gap_value(trial), _values_of(trial, study, target))
            if evaluation is not None:
                workers, executor, progress = evaluation
                final = configured(study, target, point.values, study.protocol.folds, study.protocol.seeds)
                summary_of_run = run_study(final, workers=workers, progress=progress, executor=executor)
                point.test = _log_best(ctx, sid, parent_id, final, point)
                if trial.number == best.number:
                    result.evaluation, result.test = summary_of_run, point.test
            if study.search.multi_objective:
                result.front.append(point)
        if result.test:
            summary.update({f"test_{k}": v for k, v in result.test.items() if k in ("war_mean", "uar_mean")})
    tracker.log_metrics(parent_id, summary)
    tracker.end(parent_id, "FINISHED")
    return result


def _values_of(trial: FrozenTrial, study: Study, target: Target) -> dict[str, float]:
    return suggest(optuna.trial.FixedTrial(trial.params, trial.number), study, target)


def _log_best(ctx: Context, sid: str, parent_id: str, final: Study, point: FrontPoint) -> dict:
    """The ``search-best`` run of a tested trial (the best, or one of the front): its values, its validation
    objectives and its configuration's test-fold figures."""
    tracker = ctx.tracker
    cell = final.cells()[0]
    cfg = config_id(cell, ctx.fingerprint)
    config_runs = tracker.runs("config", config_id=cfg)
    test = dict(config_runs[0].metrics) if config_runs else {}
    if config_runs:
        tracker.set_tags(config_runs[0].run_id, {"gemo.search_id": sid, "gemo.best_trial": str(point.trial)})
    existing = [r for r in tracker.runs("search-best", search_id=sid) if r.tags.get("gemo.config_id") == cfg]
    if existing:
        run_id = existing[0].run_id
    else:
        params = {**point.values, "trial": point.trial, "config": run_name(cell)}
        tags = {
            **provenance.tags(),
            "gemo.study": final.name,
            "gemo.search_id": sid,
            "gemo.config_id": cfg,
            "gemo.config_run_id": config_runs[0].run_id if config_runs else "",
        }
        name = f"{'front' if final.search.multi_objective else 'best'}: trial {point.trial}"
        run_id = tracker.start_child("search-best", parent_id, name, params, tags)
    validation = {"objective": point.uar, **({GAP_ATTR: point.gap} if math.isfinite(point.gap) else {})}
    tracker.log_metrics(run_id, {**validation, **test})
    tracker.end(run_id, "FINISHED")
    return test


# ---- the cost of a trial ------------------------------------------------------------------------------------


def measure_trial_cost(study: Study, *, repeats: int = 3, finetune: bool = False) -> dict[str, Any]:
    """Seconds per search trial with and without the pooled-feature cache, timed side by side.

    One trial is what the objective trains: every search fold of the study's first search, at the middle
    of each searched range, without Optuna or MLflow. The modes run interleaved, ``repeats`` times each,
    in this process, and the median is reported:

    - ``cached``: frozen audio encoder, features read from a warm cache (what a trial costs in a search);
    - ``cold``: the same with an empty cache (the first trial of a search computes the features);
    - ``uncached``: frozen audio encoder run on every batch (``train.feature_cache = false``);
    - ``finetune`` (optional): the encoders fine-tuned (``train.freeze_encoders = "none"``).

    Raises:
        SearchError: the study does not freeze its audio encoder.
    """
    import statistics
    import tempfile

    import torch

    from benchmark.train import resolve_device

    base_train = TrainConfig(**{"lr": 1.0, **study.train})
    if base_train.freeze_encoders == "none":
        raise SearchError(f"{study.path or study.name}: train.freeze_encoders: set 'audio' or 'all' to use the cache")
    target = targets(study)[0]
    values = {}
    for name, rng in study.search.space().items():
        if isinstance(rng, tuple):
            values[name] = (rng[0] + rng[1]) / 2 if name == "alpha" else math.sqrt(rng[0] * rng[1])
    fixed = suggest(optuna.trial.FixedTrial(values), study, target)
    records = study.data.load()

    def cells(**train: Any) -> list[CellSpec]:
        narrowed = replace(study, train={**study.train, **train})
        return configured(narrowed, target, fixed, search_folds(study), study.protocol.seeds[:1]).cells()

    modes: dict[str, tuple[list[CellSpec], str]] = {
        "cached": (cells(feature_cache=True), "frozen audio encoder, pooled features from a warm cache"),
        "cold": (cells(feature_cache=True), "frozen audio encoder, empty cache (features computed first)"),
        "uncached": (cells(feature_cache=False), "frozen audio encoder run on every batch"),
    }
    if finetune:
        modes["finetune"] = (cells(freeze_encoders="none"), "encoders fine-tuned")
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="gemo-trial-cost-") as tmp:
        warm = Path(tmp) / "warm"
        for cell in modes["cached"][0][:1]:
            fit_cell(records, cell, progress=False, cache_dir=warm)  # fill the warm cache
        for r in range(repeats):
            for mode, (mode_cells, _) in modes.items():
                cache = Path(tmp) / f"cold-{r}" if mode == "cold" else warm
                started = time.perf_counter()
                for cell in mode_cells:
                    fit_cell(records, cell, progress=False, cache_dir=cache)
                times[mode].append(time.perf_counter() - started)
    cell = modes["cached"][0][0]
    return {
        "study": study.name,
        "trial": f"{target.audio_encoder} {target.variant}, {len(search_folds(study))} folds x "
        f"{cell.train.epochs} epochs, {len(records)} utterances",
        "device": provenance.device_name(str(resolve_device(cell.train.device))),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "values": fixed,
        "modes": {m: {"seconds": statistics.median(t), "all": t, "what": modes[m][1]} for m, t in times.items()},
        "versions": provenance.versions(),
    }
