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


_TEST_EXTRAS = ("test", "ui-test", "postgres")
_TEST_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _install(session: nox.Session, *extras: str, constraints: Path | None = None) -> None:
    session.install(_torch_requirement())
    pins = ["-c", str(constraints)] if constraints else []
    session.install(*pins, "-e", f".[{','.join(extras)}]" if extras else ".")


def _run_tests(session: nox.Session, *marker: str) -> None:
    _install(session, *_TEST_EXTRAS)
    session.run("pytest", *marker, *session.posargs, env=_TEST_ENV)


def _oldest_constraints(session: nox.Session) -> Path:
    """A pip constraints file that pins every requirement of pyproject.toml to the floor of its range.

    torch is left out: it stays the machine's build (:func:`_torch_requirement`), since its floor's CPU build
    cannot be installed everywhere. Every other requirement, the test extras' included, must have exactly one
    ``>=``.
    """
    import tomllib

    from packaging.requirements import Requirement  # a dependency of nox itself

    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in _TEST_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for text in requirements:
        req = Requirement(text)
        if req.name == "torch":
            continue
        floors = [spec.version for spec in req.specifier if spec.operator == ">="]
        if len(floors) != 1:
            session.error(f"pyproject.toml: requirement {text!r} needs exactly one '>=' floor")
        pins.append(f"{req.name}=={floors[0]}")
    path = Path(session.create_tmp()) / "oldest.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (GPU tests are skipped without CUDA)."""
    _run_tests(session)


@nox.session
def tests_fast(session: nox.Session) -> None:
    """Run the tests that do not train models end to end (-m 'not slow')."""
    _run_tests(session, "-m", "not slow")


@nox.session
def tests_oldest(session: nox.Session) -> None:
    """Run the whole test suite with every dependency at the oldest version pyproject.toml admits (torch aside)."""
    _install(session, *_TEST_EXTRAS, constraints=_oldest_constraints(session))
    session.run("pip", "freeze", "--exclude-editable")  # what was tested
    session.run("pytest", *session.posargs, env=_TEST_ENV)


@nox.session
def tests_ui(session: nox.Session) -> None:
    """Drive the MLflow UI in headless Chromium (needs Debian's chromium package)."""
    _run_tests(session, "-m", "ui")


@nox.session
def reproduce_table(session: nox.Session) -> None:
    """Check, run and report the paper's table and claims (IEMOCAP when IEMOCAP_ROOT is set, else embedded)."""
    _install(session)
    if os.environ.get("IEMOCAP_ROOT"):
        study, run_args = "studies/paper_table.toml", []
        session.log(f"IEMOCAP_ROOT={os.environ['IEMOCAP_ROOT']}: running {study} with pre-trained checkpoints")
    else:
        study, run_args = "studies/paper_table_embedded.toml", ["--workers", "2"]
        session.log(
            "IEMOCAP_ROOT is not set: running the embedded default of the same shape "
            f"({study}: generated IEMOCAP-format corpus, tiny random-init encoders). "
            "Set IEMOCAP_ROOT=/path/to/IEMOCAP_full_release to reproduce the paper's table."
        )
    # every problem at once (corpus, checkpoints, store, disk) before 60 cells fail one by one
    overrides = [a for a in session.posargs if "=" in a and not a.startswith("-")]
    session.run("gemo-bench", "check", study, *overrides, *run_args)
    session.log(f"where it stands, from another shell: {session.bin}/gemo-bench status {study}")
    session.run("gemo-bench", "run", study, *run_args, *session.posargs)
    session.run("gemo-bench", "report", "table", study, *session.posargs)
    session.run("gemo-bench", "report", "claims", study, *overrides)
    name = Path(study).stem
    session.log(f"report: reports/{name}/table.md (+ table.csv, table.tex, table.png)")
    session.log(f"the paper's claims, each with a verdict: reports/{name}/claims.md")
    session.log("browse every run: nox -s ui  (MLflow UI on http://127.0.0.1:5000)")


@nox.session
def reports(session: nox.Session) -> None:
    """Write every report of a study (default: the embedded table study) and its HTML page from logged runs."""
    _install(session)
    study = session.posargs[0] if session.posargs else "studies/paper_table_embedded.toml"
    session.run("gemo-bench", "report", "all", study, *session.posargs[1:])
    session.log(f"page: reports/{Path(study).stem}/index.html")


@nox.session
def bench_reports(session: nox.Session) -> None:
    """Time every report on simulated stores of 1,000 fold runs (embeddings and calibration: 60), populated once in .gemo/."""
    _install(session)
    session.run("python", "-m", "benchmark.reports.bench_reports", *session.posargs)


@nox.session
def regression(session: nox.Session) -> None:
    """Run the CI subset afresh and compare every cell's WAR/UAR with reports/baselines/ci_subset.json."""
    _install(session)
    session.run("gemo-bench", "regression", "studies/ci_subset.toml", "--no-progress", *session.posargs)


@nox.session
def throughput(session: nox.Session) -> None:
    """Measure training throughput: a naive loop and the suite's step side by side (GPU when present)."""
    _install(session)
    session.run("gemo-bench", "bench", "throughput", *session.posargs)


@nox.session
def throughput_matrix(session: nox.Session) -> None:
    """Measure throughput for every preset and speed option, each in its own process; one summary table."""
    _install(session)
    session.run("gemo-bench", "bench", "throughput-matrix", *session.posargs)


@nox.session
def search(session: nox.Session) -> None:
    """Check, search alpha_e / temperature / lr on the embedded default (studies/search_embedded.toml), report."""
    _install(session)
    study = "studies/search_embedded.toml"
    overrides = [a for a in session.posargs if "=" in a and not a.startswith("-")]  # key=value, not --options
    session.run("gemo-bench", "check", study, *overrides, "--search", "--workers", "2")
    session.run("gemo-bench", "search", study, "--workers", "2", *session.posargs)
    session.run("gemo-bench", "report", "search", study, *overrides)
    session.log(f"report: reports/{Path(study).stem}/search.md (+ search.csv, search_trials.csv, search.png)")
    session.log("rerun to resume the search, or pass --trials N to extend it")
    session.log("browse the trials: nox -s ui (each trial is a run nested under its search), or")
    session.log("  pip install optuna-dashboard && optuna-dashboard .gemo/optuna/search_embedded.journal")


@nox.session
def search_cost(session: nox.Session) -> None:
    """Time one search trial with and without the frozen-feature cache, side by side (a benchmark)."""
    _install(session)
    session.run("gemo-bench", "search-cost", "studies/search_embedded.toml", "--finetune", *session.posargs)


@nox.session
def ui(session: nox.Session) -> None:
    """Serve the MLflow UI for the default store (./mlflow.db) on 127.0.0.1:5000."""
    _install(session)
    store = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    session.run("mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", "5000", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "benchmark", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "benchmark", "tests", "noxfile.py")
