"""Where a study stands: each cell finished, running, stale, failed, killed or pending, and the time left.

Read from the study's tracking store and the cell locks; nothing is trained and nothing is written (a store
or experiment that does not exist yet is not created). A cell's state comes from its fold runs
(``gemo.cell_id``) and its lock, the same evidence ``gemo-bench run`` acts on:

- ``finished``: a FINISHED run; ``run`` skips it;
- ``running``: a RUNNING run whose lock a live process holds;
- ``stale``: a RUNNING run whose lock nobody holds: its process died, and the next ``run`` marks it
  KILLED and trains the cell again;
- ``failed`` / ``killed``: the newest run ended FAILED (an error, kept as its reason) or KILLED (Ctrl-C, or
  marked stale); the next ``run`` trains the cell again;
- ``pending``: no run yet.

A running or stale cell also shows the epochs its run has logged, and a cell with a saved training state
(``train.resumable``, :mod:`benchmark.resume`) the epoch the next ``run`` resumes it after.

A study whose Optuna searches (``gemo-bench search``) have begun also gets each search's trials: finished
against the budget, running, and the best so far.

The time left is estimated from the cells already finished: the median duration of the finished cells of
the same audio encoder (of all finished cells when an encoder has none yet) for each cell still to train,
less the time a running cell has already run.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from benchmark.config import CellSpec
from benchmark.provenance import redact_uri
from benchmark.resume import saved_epoch
from benchmark.runner import data_fingerprint, run_name, try_lock
from benchmark.search_store import SearchProgress, search_progress
from benchmark.studies import Study, cell_id
from benchmark.tracking import RunRecord, Tracker, resolve_uri, state_dir

STATES = ("finished", "running", "stale", "failed", "killed", "pending")
TO_TRAIN = ("stale", "failed", "killed", "pending")  # what the next `gemo-bench run` trains


@dataclass(frozen=True)
class CellStatus:
    """One cell of the study's grid and what the store says about it."""

    cell_id: str
    config: str  # the configuration's run name: encoder, variant, alpha, seed
    fold: int
    encoder: str
    state: str
    run_id: str = ""
    reason: str = ""  # first line of a failed or killed run's end reason
    host: str = ""  # where a running or stale run was started
    pid: str = ""
    seconds: float | None = None  # a finished run's duration, a running run's time so far
    war: float | None = None
    uar: float | None = None
    epochs: int = 0  # the cell's epoch budget
    epoch: int | None = None  # epochs a running or stale run has logged so far
    saved_epoch: int | None = None  # train.resumable: the next run resumes after this epoch


@dataclass
class StudyStatus:
    """A study's cells and what they add up to."""

    study: str
    store: str  # redacted tracking URI
    experiment: str
    data: dict
    fingerprint: str
    store_exists: bool
    cells: list[CellStatus]
    other_finished: int = 0  # finished fold runs of the experiment that are no cell of this grid
    unverified_running: int = 0  # RUNNING runs whose lock is not where this process can see it
    lock_dir: str = ""
    estimate_seconds: float | None = None
    estimate_basis: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    search_storage: str = ""  # where the study's Optuna searches are, when any has begun
    searches: list[SearchProgress] = field(default_factory=list)
    resume_dir: str = ""  # where this experiment's saved training states are (train.resumable)
    orphan_states: int = 0  # saved training states that belong to no unfinished cell of this grid
    orphan_state_bytes: int = 0

    @property
    def complete(self) -> bool:
        return all(c.state == "finished" for c in self.cells)

    def to_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete}


def study_status(study: Study) -> StudyStatus:
    """Every cell of ``study`` with its state, read from the store and the locks.

    The corpus is read too: a cell's identity includes the data fingerprint.
    """
    records = study.data.load()
    cross_corpus = {name: spec.load() for name, spec in study.data.eval_specs()}
    fp = data_fingerprint(records, cross_corpus)
    uri = resolve_uri(study.tracking.uri)
    tracker = Tracker.existing(uri, study.experiment_name)
    runs = tracker.read_runs("cell") if tracker is not None else []
    lock_dir = state_dir(uri) / "locks" / (tracker.experiment_id if tracker is not None else "")
    now = time.time()

    by_cell: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_cell[r.tags.get("gemo.cell_id", "")].append(r)
    cells = study.cells()
    ids = [cell_id(c, fp) for c in cells]
    unverified = 0
    out = []
    for cell, cid in zip(cells, ids, strict=True):
        status, verified = _cell_status(cell, cid, by_cell.get(cid, []), lock_dir, now)
        unverified += not verified
        out.append(status)
    out = _progress(out, tracker, runs, uri)
    resume_dir = state_dir(uri) / "resume" / (tracker.experiment_id if tracker is not None else "")
    orphans = _orphan_states(resume_dir, out) if tracker is not None else []
    mine = set(ids)
    other = sum(1 for r in runs if r.status == "FINISHED" and r.tags.get("gemo.cell_id", "") not in mine)
    estimate, basis = _estimate(out)
    searched = search_progress(study)
    return StudyStatus(
        study=study.name,
        store=redact_uri(uri),
        experiment=study.experiment_name,
        data=study.data.describe(),
        fingerprint=fp,
        store_exists=tracker is not None,
        cells=out,
        other_finished=other,
        unverified_running=unverified,
        lock_dir=str(lock_dir),
        estimate_seconds=estimate,
        estimate_basis=basis,
        counts={s: sum(c.state == s for c in out) for s in STATES},
        search_storage=searched[0] if searched else "",
        searches=searched[1] if searched else [],
        resume_dir=str(resume_dir),
        orphan_states=len(orphans),
        orphan_state_bytes=sum(size for _, size in orphans),
    )


def _progress(cells: list[CellStatus], tracker: Tracker | None, runs: list[RunRecord], uri: str) -> list[CellStatus]:
    """The epochs running and stale runs have logged, and the epoch each saved training state resumes after."""
    if tracker is None:
        return cells
    by_id = {r.run_id: r for r in runs}
    live = [by_id[c.run_id] for c in cells if c.state in ("running", "stale") and c.run_id in by_id]
    logged = tracker.read_histories(live, ["val_uar"])
    folder = state_dir(uri) / "resume" / tracker.experiment_id
    out = []
    for c in cells:
        steps = [step for step, _ in logged.get(c.run_id, {}).get("val_uar", [])]
        epoch = max(steps, default=0) if c.run_id in logged else None
        saved = saved_epoch(folder / f"{c.cell_id}.pt") if c.state != "finished" and folder.is_dir() else None
        out.append(replace(c, epoch=epoch, saved_epoch=saved))
    return out


def _orphan_states(folder: Path, cells: list[CellStatus]) -> list[tuple[Path, int]]:
    """Saved training states in ``folder`` that no unfinished cell of the grid will resume, with their sizes.

    A cell finished since, a study edited (another identity) or another grid of the same experiment leaves
    them; each holds several times a model's size.
    """
    if not folder.is_dir():
        return []
    wanted = {c.cell_id for c in cells if c.state != "finished"}
    return [(p, p.stat().st_size) for p in sorted(folder.glob("*.pt")) if p.stem not in wanted]


def _cell_status(cell: CellSpec, cid: str, runs: list[RunRecord], lock_dir: Path, now: float):
    """(the cell's status, whether a RUNNING run's liveness could be checked)."""
    base = {
        "cell_id": cid,
        "config": run_name(cell),
        "fold": cell.fold,
        "encoder": cell.audio_encoder,
        "epochs": cell.train.epochs,
    }
    newest = sorted(runs, key=lambda r: (r.start_time, r.run_id), reverse=True)
    finished = [r for r in newest if r.status == "FINISHED"]
    if finished:
        r = finished[0]
        seconds = (r.end_time - r.start_time) / 1000 if r.end_time else None
        war, uar = r.metrics.get("test_war"), r.metrics.get("test_uar")
        return CellStatus(**base, state="finished", run_id=r.run_id, seconds=seconds, war=war, uar=uar), True
    running = [r for r in newest if r.status == "RUNNING"]
    if running:
        r = running[0]
        where = {"host": r.tags.get("gemo.host", ""), "pid": r.tags.get("gemo.pid", "")}
        elapsed = max(0.0, now - r.start_time / 1000)
        lock = lock_dir / f"{cid}.lock"
        if not lock.exists():
            # the lock lives beside the store, or in the working directory of a remote store's runs
            return CellStatus(**base, state="running", run_id=r.run_id, seconds=elapsed, **where), False
        # Probing takes the lock for an instant. A worker that tries it in that instant takes the cell for
        # another's and leaves it to the next run; only cells with a RUNNING run are probed, so that worker
        # would be picking up a dead process's cell at that very moment.
        with try_lock(lock) as free:
            state = "stale" if free else "running"
        return CellStatus(**base, state=state, run_id=r.run_id, seconds=elapsed, **where), True
    if newest:
        r = newest[0]
        state = "failed" if r.status == "FAILED" else "killed"
        reason = (r.tags.get("gemo.end_reason", "") or r.status).splitlines()[0]
        return CellStatus(**base, state=state, run_id=r.run_id, reason=reason), True
    return CellStatus(**base, state="pending"), True


def _estimate(cells: list[CellStatus]) -> tuple[float | None, str]:
    """Seconds of cell time left, and what the estimate rests on (None when no cell has finished)."""
    durations: dict[str, list[float]] = defaultdict(list)
    for c in cells:
        if c.state == "finished" and c.seconds is not None:
            durations[c.encoder].append(c.seconds)
    everything = [s for v in durations.values() for s in v]
    left = [c for c in cells if c.state in (*TO_TRAIN, "running")]
    if not left:
        return 0.0, "nothing left to train"
    if not everything:
        return None, "no finished cell to estimate from"
    overall = statistics.median(everything)
    total = 0.0
    for c in left:
        typical = statistics.median(durations[c.encoder]) if durations.get(c.encoder) else overall
        total += max(0.0, typical - (c.seconds or 0.0)) if c.state == "running" else typical
    n = len(everything)
    return total, f"median duration of the {n} finished cell{'s' * (n != 1)}, per audio encoder"


def render(status: StudyStatus, study_args: str) -> str:
    """The status as text: counts, a line per configuration, failed and running cells, time left.

    Args:
        study_args: the study file and its overrides, as the commands it suggests should name them.
    """
    c = status.counts
    n = len(status.cells)
    head = f"{status.study}: {n} cells: " + ", ".join(f"{c[s]} {s}" for s in STATES if c[s] or s == "finished")
    lines = [head]
    if status.store_exists:
        lines.append(f"store: {status.store} (experiment {status.experiment})")
    else:
        lines.append(f"store: {status.store}: no runs of experiment {status.experiment!r} yet")
    lines.append(f"data: {status.data.get('kind', 'unknown')} (fingerprint {status.fingerprint})")
    if status.searches:
        lines += ["", f"searches (Optuna storage {status.search_storage}):", *_search_lines(status.searches)]
        lines += ["", "the grid `gemo-bench run` trains (a search tests its best configuration instead):"]
    lines += ["", *_config_table(status.cells)]
    for state, title in (("failed", "failed"), ("killed", "killed"), ("stale", "stale (process died)")):
        rows = [x for x in status.cells if x.state == state]
        if rows:
            lines += ["", f"{title}:"]
            lines += [
                f"  {x.config} fold {x.fold}: {x.reason or 'no reason logged'} (run {x.run_id}){_where(x)}"
                for x in rows
            ]
    running = [x for x in status.cells if x.state == "running"]
    if running:
        lines += ["", "running:"]
        lines += [
            f"  {x.config} fold {x.fold}: {_duration(x.seconds)} so far on {x.host or '?'} (pid {x.pid or '?'})"
            + (f", epoch {x.epoch} of {x.epochs} done" if x.epoch is not None else "")
            for x in running
        ]
    notes = []
    if status.unverified_running:
        notes.append(
            f"{status.unverified_running} running cell(s) could not be checked for a live process: their locks "
            f"are not in {status.lock_dir} (run this where the study runs)"
        )
    if status.other_finished:
        notes.append(
            f"{status.other_finished} finished fold run(s) of this experiment are no cell of this grid "
            "(other settings or data, or a search's best configuration)"
        )
    if status.orphan_states:
        notes.append(
            f"{status.orphan_states} saved training state(s) in {status.resume_dir} "
            f"({status.orphan_state_bytes / 1e9:.2f} GB) belong to no unfinished cell of this grid (cells "
            "finished since, other settings, or another grid of this experiment): delete them when no run of "
            "the experiment needs them"
        )
    if notes:
        lines += ["", *(f"note: {t}" for t in notes)]
    lines.append("")
    todo = sum(c[s] for s in TO_TRAIN)
    trials = sum(max(0, s.wanted - s.counts.done - s.counts.running) if s.counts else s.wanted for s in status.searches)
    search_next = (
        [f"next: gemo-bench search {study_args} runs the {trials} trial{'s' * (trials != 1)} not finished or running"]
        if trials
        else []
    )
    if status.complete:
        lines.append(f"complete: every cell finished. Reports: gemo-bench report all {study_args}")
        return "\n".join(lines + search_next)
    if status.estimate_seconds is not None:
        lines.append(f"time left: about {_duration(status.estimate_seconds)} of cell time ({status.estimate_basis})")
    else:
        lines.append(f"time left: unknown ({status.estimate_basis})")
    if todo:
        lines.append(
            f"next: gemo-bench run {study_args} trains the {todo} cell{'s' * (todo != 1)} not finished or running"
        )
    return "\n".join(lines + search_next)


def _where(cell: CellStatus) -> str:
    """How far a cell that will be trained again had got, and where the next run resumes it."""
    parts = []
    if cell.epoch is not None:
        parts.append(f"{cell.epoch} of {cell.epochs} epochs logged")
    if cell.saved_epoch is not None:
        parts.append(f"resumes after epoch {cell.saved_epoch}")
    return f"; {', '.join(parts)}" if parts else ""


def _search_lines(searches: list[SearchProgress]) -> list[str]:
    out = []
    for s in searches:
        if s.counts is None:
            out.append(f"  {s.study_name}: not started ({s.wanted} trials wanted)")
            continue
        c = s.counts
        line = (
            f"  {s.study_name}: {c.done} of {s.wanted} trials finished "
            f"({c.complete} complete, {c.pruned} pruned, {c.failed} failed)"
        )
        if c.running:
            line += f", {c.running} running"
        if s.best_trial is not None:
            values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(s.best_params.items()))
            gap = f", gender gap {s.best_gap:.4f}" if s.best_gap is not None else ""
            line += f"; best: trial {s.best_trial}, mean validation UAR {s.best_value:.4f}{gap} ({values})"
            if s.front:
                line += f"; Pareto front: trials {', '.join(map(str, s.front))}"
        out.append(line)
    return out


def _config_table(cells: list[CellStatus]) -> list[str]:
    groups: dict[str, list[CellStatus]] = {}
    for c in cells:
        groups.setdefault(c.config, []).append(c)
    width = max(len("configuration"), *(len(k) for k in groups))
    out = [f"{'configuration':<{width}}  folds  running  to train  test WAR  test UAR"]
    for name, rows in groups.items():
        done = [r for r in rows if r.state == "finished"]
        running = sum(r.state == "running" for r in rows)
        todo = sum(r.state in TO_TRAIN for r in rows)
        war = _mean([r.war for r in done])
        uar = _mean([r.uar for r in done])
        out.append(
            f"{name:<{width}}  {len(done):>2}/{len(rows):<2}  {running:>7}  {todo:>8}  {_fmt(war):>8}  {_fmt(uar):>8}"
        )
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
