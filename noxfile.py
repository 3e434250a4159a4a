"""Sessions for tests, lint and the suite's jobs; `nox -l` lists them."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def _torch_requirement() -> str:
    """The torch requirement for this machine.

    ``GEMO_TORCH`` wins (e.g. ``torch==2.5.1`` or a CUDA build's spec). Otherwise a torch wheel found in
    ``PIP_FIND_LINKS`` is pinned, so machines that ship a local CPU build use it instead of downloading
    the registry's multi-GB CUDA build; elsewhere plain ``torch`` lets pip pick the platform's build.
    """
    if os.environ.get("GEMO_TORCH"):
        return os.environ["GEMO_TORCH"]
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        for wheel in sorted(glob.glob(os.path.join(folder, "torch-*.whl")), reverse=True):
            version = Path(wheel).name.split("-")[1]
            return f"torch=={version}"
    return "torch"


def _install(session: nox.Session, *extras: str) -> None:
    session.install(_torch_requirement())
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


def _run_tests(session: nox.Session, *marker: str) -> None:
    _install(session, "test")
    session.run("pytest", *marker, *session.posargs, env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (GPU tests are skipped without CUDA)."""
    _run_tests(session)


@nox.session
def tests_fast(session: nox.Session) -> None:
    """Run the tests that do not train models end to end (-m 'not slow')."""
    _run_tests(session, "-m", "not slow")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "benchmark", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "benchmark", "tests", "noxfile.py")
