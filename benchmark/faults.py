"""Fault injection, a testing hook: kill this process at a named point to prove that a rerun recovers.

It does nothing unless the environment variable ``GEMO_FAULT`` names a point. ``GEMO_FAULT=before-finish``
kills the process the first time :func:`checkpoint` is reached with that name; ``GEMO_FAULT=before-finish:3``
the third time (counted per process). The kill is a SIGKILL to the process itself: no ``finally`` block, no
``atexit`` handler and no signal handler runs, exactly as when the OOM killer or a scheduler ends a job.

The points, in the order a cell and a report reach them, are :data:`POINTS`.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "GEMO_FAULT"

POINTS: dict[str, str] = {
    "cell-started": "the cell's run exists in MLflow, nothing trained yet",
    "epoch-saved": "an epoch trained and its training state saved (train.resumable)",
    "before-artifacts": "test metrics logged, artifacts not yet",
    "before-finish": "artifacts logged, the run not yet ended FINISHED",
    "before-parent-update": "the run ended FINISHED, its parent's aggregate not yet updated",
    "report-midway": "between two files of the table report",
}

_reached: Counter[str] = Counter()


def checkpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``GEMO_FAULT`` asks for it here (``name`` or ``name:N``).

    Raises:
        ValueError: ``GEMO_FAULT`` names no known point or has a bad count, so that a typo in a test cannot
            pass for a process that survived.
    """
    assert name in POINTS, f"undeclared fault point {name!r}"
    wanted = os.environ.get(ENV, "")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}={wanted!r}: unknown fault point {point!r} (known: {', '.join(POINTS)})")
    if not (nth or "1").isdigit() or int(nth or "1") < 1:
        raise ValueError(f"{ENV}={wanted!r}: expected POINT or POINT:N with N >= 1")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(nth or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
