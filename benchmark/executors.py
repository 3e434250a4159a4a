"""Where tasks run: local worker processes, or a Slurm job array through submitit.

A *task* is one cell of a study (``gemo-bench run``) or one search worker (``gemo-bench search``). With
``kind = "slurm"`` the tasks are submitted as one job array (one task per array element, at most
``array_parallelism`` at a time), each with ``gpus_per_task`` GPUs, ``cpus_per_task`` cores, ``mem_gb``
and ``timeout_min``; the submitting command waits for them and reports each outcome. ``submitit-local``
runs the very same submission through submitit's local executor (each task a process on this machine):
a way to check a setup before a cluster run, and what the tests exercise. ``local`` is the runner's own
worker processes (``--workers``), pinned one per GPU.

Tasks coordinate only through the tracking store, file locks and the Optuna storage, so a task that dies
(preempted, timed out) is simply picked up again by the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS: tuple[str, ...] = ("local", "slurm", "submitit-local")


@dataclass(frozen=True)
class ExecutorSpec:
    """The ``[executor]`` table of a study (flags of ``run``/``search`` override it).

    Attributes:
        kind: ``local`` (worker processes here), ``slurm`` (a job array) or ``submitit-local`` (the Slurm
            code path run by submitit on this machine).
        partition, account, qos, constraint: Slurm's own options (empty: the cluster's default).
        gpus_per_task: GPUs per array task (Slurm ``--gpus-per-node`` with one task per node).
        cpus_per_task: cores per array task.
        mem_gb: memory per array task.
        timeout_min: wall-clock limit per array task.
        array_parallelism: array tasks running at once.
        folder: submitit's folder (job scripts, logs, pickled tasks and results); it must be on a file
            system the nodes share. Default: ``.gemo/submitit`` beside the MLflow store.
        setup: shell lines run before each task (``module load ...``, ``source .venv/bin/activate``).
    """

    kind: str = "local"
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 240
    array_parallelism: int = 32
    folder: str = ""
    setup: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("cpus_per_task", "mem_gb", "timeout_min", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_task < 0:
            raise ValueError(f"gpus_per_task must be >= 0, got {self.gpus_per_task}")


@dataclass
class TaskOutcome:
    """What became of one array task: its return value, or why it failed (the job's own error)."""

    index: int
    job_id: str
    value: Any = None
    error: str = ""


def make_executor(spec: ExecutorSpec, folder: Path, name: str):
    """A submitit executor for ``spec`` (``slurm`` or ``submitit-local``) writing into ``folder``."""
    import submitit

    if spec.kind == "local":
        raise ValueError("executor kind 'local' runs worker processes, not a submitit executor")
    cluster = "slurm" if spec.kind == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    gpus = spec.gpus_per_task if cluster == "slurm" else min(spec.gpus_per_task, _visible_gpus())
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": spec.timeout_min,
        "gpus_per_node": gpus,
        "tasks_per_node": 1,
        "nodes": 1,
        "cpus_per_task": spec.cpus_per_task,
        "mem_gb": spec.mem_gb,
        "slurm_array_parallelism": spec.array_parallelism,
    }
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(spec, key):
            params[f"slurm_{key}"] = getattr(spec, key)
    if spec.setup:
        params["slurm_setup" if cluster == "slurm" else "local_setup"] = list(spec.setup)
    executor.update_parameters(**params)
    return executor


def run_array(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    spec: ExecutorSpec,
    folder: Path,
    name: str,
    on_done: Callable[[TaskOutcome], None] | None = None,
) -> list[TaskOutcome]:
    """Run ``fn(*a)`` for each ``a`` in ``args`` as one job array and wait for every task.

    Args:
        fn: a module-level function (pickled with its arguments for each task).
        args: one argument tuple per task.
        spec: the executor.
        folder: submitit's folder.
        name: the job name.
        on_done: called as each task finishes, in completion order.

    Returns:
        One outcome per task, in ``args`` order; a failed task has ``error`` set (never raises for it).
    """
    import submitit

    if not args:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    executor = make_executor(spec, folder, name)
    jobs = executor.map_array(_Call(fn), list(args))
    index = {job.job_id: i for i, job in enumerate(jobs)}
    outcomes: list[TaskOutcome | None] = [None] * len(jobs)
    for job in submitit.helpers.as_completed(jobs, poll_frequency=1.0):
        i = index[job.job_id]
        try:
            outcome = TaskOutcome(i, job.job_id, value=job.result())
        except Exception as exc:  # the task's own error, or the scheduler's (timeout, preemption)
            outcome = TaskOutcome(i, job.job_id, error=_first_line(exc))
        outcomes[i] = outcome
        if on_done is not None:
            on_done(outcome)
    return [o for o in outcomes if o is not None]


class _Call:
    """Unpacks one argument tuple per task (``map_array`` passes one item)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, args: tuple) -> Any:
        return self.fn(*args)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # submitit's FailedJobError carries the task's whole traceback; its last line names the error
    lines = [line for line in text.splitlines() if line.strip()]
    tail = next((line for line in reversed(lines) if "Error" in line or "Exception" in line), None)
    return f"{type(exc).__name__}: {tail or (lines[0] if lines else '')}"[:2000]


def _visible_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip()])
    import torch

    return torch.cuda.device_count()
