"""A search's trials in the MLflow UI, for real: nested under their search run, with their objective.

Same requirements and helpers as ``test_ui_browser.py`` (Debian's ``chromium``, Playwright); skipped, saying
why, without them. A screenshot goes to ``$GEMO_CI_ARTIFACTS`` (else the test's tmp dir).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from benchmark.search import run_search
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri
from tests.test_search import make_study
from tests.test_ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SERVER_START_S,
    UI_TIMEOUT_MS,
    artifact_dir,
    cell_text,
    close_assistant_panel,
    column_index,
    free_port,
    row_index,
    run_link,
    show_metric_columns,
    stop_group,
    sync_playwright,
)
from tests.test_ui_browser import pytestmark as ui_marks

pytestmark = ui_marks


@pytest.fixture
def search_store(tmp_path, monkeypatch):
    """A 3-trial search run into a throw-away SQLite store: (uri, experiment id, parent name, trials)."""
    monkeypatch.chdir(tmp_path)
    study = load_study(make_study(tmp_path, trials=3))
    (result,) = run_search(study, evaluate=False, progress=False)
    assert result.counts.complete == 3
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    (parent,) = tracker.runs("search")
    trials = {r.tags["mlflow.runName"]: r.metrics["objective"] for r in tracker.runs("trial")}
    return study.tracking.uri, tracker.experiment_id, parent.tags["mlflow.runName"], trials


def serve(uri: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow ui exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_group(proc)
            pytest.fail(f"mlflow ui did not answer within {SERVER_START_S} s:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)


def test_trials_are_nested_under_their_search_with_the_objective(search_store, tmp_path):
    uri, experiment_id, parent, trials = search_store
    out = artifact_dir(tmp_path)
    proc, url = serve(uri, tmp_path / "mlflow-ui.log")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 2400, "height": 1200},
            )
            try:
                context.set_default_timeout(UI_TIMEOUT_MS)
                page = context.pages[0] if context.pages else context.new_page()
                try:
                    page.goto(f"{url}/#/experiments/{experiment_id}?workflowType=machine_learning")
                    run_link(page, parent).wait_for(state="visible")
                    close_assistant_panel(page)
                    for name in trials:  # nested: hidden until the search run is expanded
                        assert run_link(page, name).count() == 0, f"trial run {name!r} listed at the top level"
                    cell = page.get_by_role("gridcell").filter(has=run_link(page, parent))
                    cell.get_by_role("button").click()
                    top = row_index(page, parent)
                    for name in trials:
                        run_link(page, name).wait_for(state="visible")
                        assert top < row_index(page, name) <= top + len(trials), f"{name!r} is not under {parent!r}"
                    show_metric_columns(page, ["objective"])
                    column = column_index(page, "objective")
                    for name, objective in trials.items():
                        shown = cell_text(page, row_index(page, name), column)
                        assert float(shown) == pytest.approx(objective, abs=1e-3), name
                    shot = out / "ui-search-trials.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot: {shot}")
                except Exception:
                    page.screenshot(path=str(out / "ui-search-failure.png"), full_page=True)
                    raise
            finally:
                context.close()
    finally:
        stop_group(proc)
