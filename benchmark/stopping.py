"""How a command stops on Ctrl-C or SIGTERM: what is running ends its runs KILLED, with the reason.

Ctrl-C raises ``KeyboardInterrupt``; :func:`stop_on_sigterm` makes SIGTERM (``kill``, ``timeout``, a scheduler
stopping a job) raise :class:`Terminated`, a ``KeyboardInterrupt`` too, so both unwind the same way. Light on
purpose: every command installs it, the report commands included, which never import torch.
"""

from __future__ import annotations

import signal
import threading
import time


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a scheduler stopping a job), unwound as Ctrl-C is (see ``stop_on_sigterm``)."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread, so that what is running ends as after Ctrl-C.

    The first SIGTERM starts the orderly stop and later ones are ignored, so a second signal cannot cut the
    stop short while it ends the runs it was logging (SIGKILL still kills).
    """

    def stop(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def stop_name(exc: BaseException) -> str:
    """What stopped the process: ``SIGTERM`` or ``Ctrl-C`` (an exception raised in its stead names it in
    ``stopped_by``)."""
    return getattr(exc, "stopped_by", None) or ("SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C")


def stop_exit_code(exc: BaseException) -> int:
    """The shell's exit code of a process stopped by that signal: 143 (SIGTERM) or 130 (SIGINT)."""
    return 128 + (signal.SIGTERM if stop_name(exc) == "SIGTERM" else signal.SIGINT)


def stop_workers(procs: list, stopped_by: BaseException, grace_s: float = 60) -> None:
    """After Ctrl-C or SIGTERM, give worker processes ``grace_s`` to end the runs they were logging.

    A terminal's Ctrl-C (or ``timeout``'s SIGTERM) reaches the whole process group; a ``kill`` of this process
    alone does not, so SIGTERM is passed on. A worker still at it after the grace is sent SIGTERM (it stops as
    above), and one that still does not end is killed: the next run finds its cell stale.
    """
    if isinstance(stopped_by, Terminated):
        for p in procs:
            if p.is_alive():
                p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
