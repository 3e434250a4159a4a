"""Execute a study's cells: resumable, lock-protected, local worker processes or a Slurm job array.

No training logic lives here: a cell is ``train.train_cell``; tracking is ``tracking.Tracker``.

Resumption and exclusion:
- each cell has a stable identity (``studies.cell_id``: resolved config + data fingerprint);
- a cell with a FINISHED run is skipped;
- a worker runs a cell only while holding an exclusive ``flock`` on ``<state>/locks/<cell_id>.lock``;
  the kernel releases it when the process dies, however it dies, so a killed cell is simply run again,
  and its RUNNING run (nobody holds its lock) is marked KILLED first. No cell is ever run twice;
- a process that dies after finishing a cell but before updating its parent leaves the parent behind its
  children: every ``run`` starts by recomputing such parents (:func:`repair_parents`).

``faults.checkpoint`` marks the moments in between, where tests kill the process on purpose.

With ``executor.kind = "slurm"`` (or ``submitit-local``) each unfinished cell is one task of a job array
(``benchmark.executors``); a task runs :func:`run_cell_task`, the same locked ``run_one`` as a local worker.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

from tqdm.auto import tqdm

from benchmark import provenance
from benchmark.config import CellSpec
from benchmark.data.records import CLASSES, PREDICTION_COLUMNS, Utterance
from benchmark.data.sources import fingerprint
from benchmark.executors import ExecutorSpec, TaskOutcome, run_array
from benchmark.faults import checkpoint
from benchmark.models.presets import describe_weights
from benchmark.stopping import stop_exit_code, stop_name, stop_on_sigterm, stop_workers
from benchmark.studies import Study, cell_id, config_id
from benchmark.tracking import Tracker, flatten, resolve_uri, state_dir
from benchmark.train import CellResult, EpochStats, train_cell


@dataclass
class RunSummary:
    """What a ``run`` did: cells trained now, cells already finished, cells that failed (with reasons)."""

    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during :func:`run_study`. The cells in training ended their runs KILLED (the next
    ``run`` trains them again); ``summary`` holds what finished before it, ``executor`` where the cells were
    running, and ``stopped_by`` what stopped it (``Ctrl-C`` or ``SIGTERM``)."""

    def __init__(self, summary: RunSummary, executor: str, stopped_by: str = "Ctrl-C") -> None:
        super().__init__()
        self.summary = summary
        self.executor = executor
        self.stopped_by = stopped_by


@dataclass
class Context:
    """What every cell of a study run shares, computed once per worker."""

    study: Study
    records: list[Utterance]
    fingerprint: str
    data_description: dict
    tracker: Tracker
    lock_dir: Path
    cross_corpus: dict[str, list[Utterance]] = field(default_factory=dict)  # evaluation corpora, whole


def prepare(study: Study) -> Context:
    # the store first: an unwritable one fails in a second, before a corpus is read for minutes
    uri = resolve_uri(study.tracking.uri)
    tracker = Tracker(uri, study.experiment_name)
    lock_dir = state_dir(uri) / "locks" / tracker.experiment_id
    lock_dir.mkdir(parents=True, exist_ok=True)
    records = study.data.load()
    cross = {name: spec.load() for name, spec in study.data.eval_specs()}
    return Context(study, records, data_fingerprint(records, cross), study.data.describe(), tracker, lock_dir, cross)


def data_fingerprint(records: list[Utterance], cross_corpus: dict[str, list[Utterance]]) -> str:
    """The training corpus's fingerprint, joined with the evaluation corpora's when the study has any."""
    if not cross_corpus:
        return fingerprint(records)  # the identity cells of studies without evaluation corpora always had
    parts = [fingerprint(records), *(f"{name}:{fingerprint(recs)}" for name, recs in sorted(cross_corpus.items()))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Yield True while holding an exclusive lock on ``path``, False if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Block until holding an exclusive lock on ``path``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sweep_stale(ctx: Context) -> int:
    """Mark KILLED every RUNNING cell run of the experiment whose cell lock nobody holds (its process died)."""
    swept = 0
    for run in ctx.tracker.runs("cell", "RUNNING"):
        cid = run.tags.get("gemo.cell_id", "")
        with try_lock(ctx.lock_dir / f"{cid}.lock") as free:
            if free:
                swept += ctx.tracker.mark_stale(cid)
    return swept


def repair_parents(ctx: Context) -> int:
    """Recompute every parent run whose aggregate misses finished folds (its process died in between)."""
    lagging = ctx.tracker.lagging_parents()
    for parent_id, cfg in lagging:
        with hold_lock(ctx.lock_dir / f"config-{cfg}.lock"):
            ctx.tracker.update_parent(parent_id, cfg)
    return len(lagging)


def run_name(cell: CellSpec) -> str:
    alpha = "" if cell.variant == "emo-clap" else f" a={cell.alpha:g}"
    mode = f" {cell.ml_mode}" if cell.variant == "ml-gemo-clap" else ""
    return f"{cell.audio_encoder} {cell.variant}{alpha}{mode} s{cell.seed}"


def cell_tags(ctx: Context, cell: CellSpec) -> dict[str, str]:
    return {
        **provenance.tags(),
        "gemo.study": ctx.study.name,
        "gemo.config_id": config_id(cell, ctx.fingerprint),
        "gemo.data_fingerprint": ctx.fingerprint,
        "gemo.data_source": ctx.data_description.get("kind", "unknown"),
        "gemo.audio_encoder": cell.audio_encoder,
        "gemo.variant": cell.variant,
        "gemo.weights": describe_weights(cell.audio_encoder, "audio"),
        "gemo.text_weights": describe_weights(cell.text_encoder, "text"),
    }


def config_params(cell: CellSpec, ctx: Context) -> dict:
    d = cell.to_dict()
    d.pop("fold")
    return {**flatten(d), **flatten({"data": _data_params(ctx)})}


def _data_params(ctx: Context) -> dict:
    keep = ("kind", "root", "seed", "size", "control", "difficulty", "version", "subset")
    out = {k: v for k, v in ctx.data_description.items() if k in keep}
    if ctx.cross_corpus:
        out["eval_corpora"] = ",".join(ctx.cross_corpus)
    return out


def run_one(ctx: Context, cell: CellSpec, progress: bool = False) -> str:
    """Run one cell if it is not finished and nobody else runs it. Returns trained/skipped/busy."""
    cid = cell_id(cell, ctx.fingerprint)
    cfg = config_id(cell, ctx.fingerprint)
    with try_lock(ctx.lock_dir / f"{cid}.lock") as mine:
        if not mine:
            return "busy"
        # checked under the lock: another worker may have finished it since our last look
        if ctx.tracker.runs("cell", "FINISHED", cell_id=cid):
            return "skipped"
        ctx.tracker.mark_stale(cid)
        tags = cell_tags(ctx, cell)
        with hold_lock(ctx.lock_dir / f"config-{cfg}.lock"):
            parent = ctx.tracker.parent(cfg, run_name(cell), config_params(cell, ctx), tags)
        params = {**config_params(cell, ctx), "fold": cell.fold}
        run_id = ctx.tracker.start_cell(
            parent, f"{run_name(cell)} fold {cell.fold}", params, {**tags, "gemo.cell_id": cid}
        )
        checkpoint("cell-started")
        resume = resume_file(ctx, cid) if cell.train.resumable else None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                result = train_cell(
                    ctx.records,
                    cell,
                    progress=progress,
                    on_epoch=lambda s: ctx.tracker.log_metrics(run_id, epoch_metrics(s), s.epoch),
                    cross_corpus=ctx.cross_corpus,
                    on_evaluated=model_saver(ctx, Path(tmp) / "model"),
                    resume=resume,
                )
                ctx.tracker.client.set_tag(run_id, "gemo.device", provenance.device_name(result.device))
                if result.resumed_from:
                    ctx.tracker.client.set_tag(run_id, "gemo.resumed_from_epoch", str(result.resumed_from))
                ctx.tracker.log_metrics(run_id, test_metrics(result))
                checkpoint("before-artifacts")
                write_cell_artifacts(result, ctx, Path(tmp))
                ctx.tracker.log_artifacts(run_id, Path(tmp))
            checkpoint("before-finish")
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                ctx.tracker.end(run_id, "KILLED", f"interrupted ({stop_name(exc)}); the next run trains the cell again")
            else:
                ctx.tracker.end(run_id, "FAILED", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            raise
        ctx.tracker.end(run_id, "FINISHED")
        if resume is not None:
            resume.unlink(missing_ok=True)
        checkpoint("before-parent-update")
        with hold_lock(ctx.lock_dir / f"config-{cfg}.lock"):
            ctx.tracker.update_parent(parent, cfg)
        return "trained"


def resume_file(ctx: Context, cid: str) -> Path:
    """Where a cell with ``train.resumable`` keeps its training state (:mod:`benchmark.resume`)."""
    return state_dir(ctx.tracker.uri) / "resume" / ctx.tracker.experiment_id / f"{cid}.pt"


def model_saver(ctx: Context, folder: Path):
    """With ``tracking.log_models``, the hook that saves a cell's model into ``folder`` (logged as ``model/``)."""
    if not ctx.study.tracking.log_models:
        return None
    from benchmark.models.saved import save_cell

    return lambda fit, result: save_cell(fit, result, folder, data=ctx.data_description)


def epoch_metrics(s: EpochStats) -> dict[str, float]:
    return {
        "train_loss": s.train_loss,
        "val_war": s.val_war,
        "val_uar": s.val_uar,
        "lr": s.lr,
        "logit_scale": s.logit_scale,
        **{f"val_uar_{g}": v for g, v in s.val_uar_by_gender.items()},
    }


def test_metrics(result: CellResult) -> dict[str, float]:
    out = {"test_war": result.test["war"], "test_uar": result.test["uar"], "best_epoch": result.best_epoch}
    for g, m in result.test["by_gender"].items():
        out[f"test_war_{g}"] = m["war"]
        out[f"test_uar_{g}"] = m["uar"]
    # cross-corpus: xc_<corpus>_war, _uar, _war_F, _war_M, _uar_F, _uar_M, _n
    for name, c in result.cross_corpus.items():
        out[f"xc_{name}_war"] = c["test"]["war"]
        out[f"xc_{name}_uar"] = c["test"]["uar"]
        for g, m in c["test"]["by_gender"].items():
            out[f"xc_{name}_war_{g}"] = m["war"]
            out[f"xc_{name}_uar_{g}"] = m["uar"]
        out[f"xc_{name}_n"] = len(c["predictions"])
    return out


def write_cell_artifacts(result: CellResult, ctx: Context, folder: Path) -> None:
    """Confusion matrices (CSV + PNG, overall and per gender), predictions, metrics, resolved spec."""
    from benchmark.reports.plots import confusion_png

    spec = result.spec
    blocks = {"all": result.test, **result.test["by_gender"]}
    for name, block in blocks.items():
        stem = "confusion" if name == "all" else f"confusion_{name}"
        with open(folder / f"{stem}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["true\\predicted", *CLASSES])
            for code, row in zip(CLASSES, block["confusion"], strict=True):
                w.writerow([code, *row])
        who = "all speakers" if name == "all" else f"{'female' if name == 'F' else 'male'} speakers"
        title = f"{spec.audio_encoder} {spec.variant}, fold {spec.fold}: {who}\nWAR {block['war']:.3f}  UAR {block['uar']:.3f}"
        confusion_png(block["confusion"], CLASSES, title, folder / f"{stem}.png")
    _write_predictions(folder / "predictions.csv", result.predictions)
    if ctx.study.tracking.log_embeddings and result.embeddings is not None:
        write_embeddings(folder / "embeddings.npz", result)
    for name, c in result.cross_corpus.items():
        (folder / "cross_corpus" / name).mkdir(parents=True)
        _write_predictions(folder / "cross_corpus" / name / "predictions.csv", c["predictions"])
        (folder / "cross_corpus" / name / "metrics.json").write_text(json.dumps(c["test"], indent=2))
    (folder / "metrics.json").write_text(
        json.dumps({"test": result.test, "sizes": result.sizes, "best_epoch": result.best_epoch}, indent=2)
    )
    study = ctx.study.to_dict()
    study["tracking"]["uri"] = provenance.redact_uri(study["tracking"]["uri"])  # a URI may carry a password
    study["search"]["storage"] = provenance.redact_uri(study["search"]["storage"])
    resolved = {
        "cell": spec.to_dict(),
        "study": study,
        "data": ctx.data_description,
        "data_fingerprint": ctx.fingerprint,
    }
    (folder / "cell_spec.json").write_text(json.dumps(resolved, indent=2, default=str))


def write_embeddings(path: Path, result: CellResult) -> None:
    """``embeddings.npz`` (:mod:`benchmark.reports.embeddings`): the selected model's test embeddings."""
    from benchmark.reports.embeddings import save_scored

    emb = result.embeddings
    save_scored(path, result.predictions, emb.ids, emb.audio, emb.prompts, result.classes)


def _write_predictions(path: Path, predictions: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PREDICTION_COLUMNS)
        w.writeheader()
        w.writerows(predictions)


def attempt(ctx: Context, cell: CellSpec, progress: bool) -> tuple[str, str]:
    """(outcome, reason) of trying one cell; a failed cell does not stop the others."""
    try:
        return run_one(ctx, cell, progress=progress), ""
    except Exception as exc:
        return "failed", f"{type(exc).__name__}: {exc}"


def run_study(
    study: Study, *, workers: int = 1, progress: bool = True, executor: ExecutorSpec | None = None
) -> RunSummary:
    """Run every unfinished cell of ``study`` and return what happened.

    Args:
        workers: local worker processes; with several visible GPUs each worker is pinned to one of them
            (``CUDA_VISIBLE_DEVICES``). Unused by a job array, which runs one task per cell.
        progress: show a progress bar with an ETA over the cells (and per-epoch bars with one worker).
        executor: where cells run (default: the study's ``[executor]``): ``local`` worker processes, or a
            ``slurm``/``submitit-local`` job array with one task per cell.
    """
    executor = executor or study.executor
    started = time.perf_counter()
    ctx = prepare(study)
    sweep_stale(ctx)
    repair_parents(ctx)
    cells = study.cells()
    done = ctx.tracker.finished_cells()
    todo = [c for c in cells if cell_id(c, ctx.fingerprint) not in done]
    summary = RunSummary(skipped=[cell_id(c, ctx.fingerprint) for c in cells if c not in todo])
    bar = tqdm(total=len(todo), desc=f"{study.name}: cells", unit="cell", disable=not progress)

    def report(cell: CellSpec, outcome: str, reason: str) -> None:
        # With several workers each sees every cell: "busy" says nothing, and a "skipped" from a worker
        # that found the cell finished gives way to the outcome of the worker that ran it.
        cid = cell_id(cell, ctx.fingerprint)
        if outcome == "busy" or outcomes.get(cid, ("skipped",))[0] != "skipped":
            return
        if cid not in outcomes:
            bar.update(1)
        outcomes[cid] = (outcome, f"{run_name(cell)} fold {cell.fold}: {reason}")

    def summarise() -> RunSummary:
        bar.close()
        for cid, (outcome, reason) in outcomes.items():
            if outcome == "failed":
                summary.failed[cid] = reason
            else:
                (summary.trained if outcome == "trained" else summary.skipped).append(cid)
        summary.seconds = time.perf_counter() - started
        return summary

    outcomes: dict[str, tuple[str, str]] = {}
    try:
        if executor.kind != "local":
            _run_array(study, todo, executor, report, state_dir(ctx.tracker.uri))
        elif workers <= 1:
            for cell in todo:
                report(cell, *attempt(ctx, cell, progress))
        else:
            _run_workers(study, todo, workers, report)
    except KeyboardInterrupt as exc:
        raise StudyInterrupted(summarise(), executor.kind, stop_name(exc)) from None
    return summarise()


def run_cell_task(study: Study, cell: CellSpec) -> tuple[str, str]:
    """One job-array task: (outcome, reason) of running one cell of ``study``."""
    from benchmark.models.quiet import silence_known_warnings

    silence_known_warnings()
    return attempt(prepare(study), cell, progress=False)


def _run_array(study: Study, cells: list[CellSpec], spec: ExecutorSpec, report, state: Path) -> None:
    folder = Path(spec.folder) if spec.folder else state / "submitit"

    def done(outcome: TaskOutcome) -> None:
        report(cells[outcome.index], *(("failed", outcome.error) if outcome.error else outcome.value))

    run_array(run_cell_task, [(study, c) for c in cells], spec, folder, f"gemo-{study.name}", done)


def _gpu_ids() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v for v in visible.split(",") if v.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _run_workers(study: Study, cells: list[CellSpec], workers: int, report) -> None:
    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    gpus = _gpu_ids()
    procs = []
    for i in range(workers):
        gpu = gpus[i % len(gpus)] if len(gpus) > 1 else None
        # each worker starts at a different cell so they do not all contend for the first one
        args = (study, cells, i * len(cells) // workers, gpu, workers, os.getpid(), queue)
        procs.append(spawn.Process(target=_worker_main, args=args))
    for p in procs:
        p.start()
    finished = 0
    try:
        while finished < len(procs):
            msg = queue.get()
            if msg is None:
                finished += 1
                continue
            index, outcome, reason = msg
            report(cells[index], outcome, reason)
    except KeyboardInterrupt as exc:
        stop_workers(procs, exc)  # they end their cells' runs KILLED
        with contextlib.suppress(Empty):  # outcomes sent before the workers stopped: the summary counts them
            while True:
                msg = queue.get(timeout=0.5)
                if msg is not None:
                    report(cells[msg[0]], *msg[1:])
        raise
    for p in procs:
        p.join()


def _worker_main(
    study: Study, cells: list[CellSpec], start: int, gpu: str | None, workers: int, parent: int, queue
) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before torch touches CUDA in this process
    import torch

    from benchmark.models.quiet import silence_known_warnings

    silence_known_warnings()
    stop_on_sigterm()
    if not torch.cuda.is_available():
        # CPU workers share the cores instead of each starting a thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        ctx = prepare(study)
        for i in [*range(start, len(cells)), *range(start)]:
            if os.getppid() != parent:  # the coordinator died: stop between cells
                return
            queue.put((i, *attempt(ctx, cells[i], progress=False)))
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM: the cell in training has ended its run KILLED; the coordinator says what to do
        sys.exit(stop_exit_code(exc))
    finally:
        queue.put(None)
