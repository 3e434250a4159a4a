"""The MLflow UI, for real: the CI subset's store served on 127.0.0.1 and driven in headless Chromium.

Needs Debian's ``chromium`` package and the ``playwright`` Python package (the ``ui-test`` extra); the test
is skipped when either is missing. Screenshots of the experiment page and of a confusion-matrix artifact
are written to ``$GEMO_CI_ARTIFACTS`` (else the test's tmp dir) so CI can keep them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmark.runner import run_name, run_study
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:
    PlaywrightTimeout = sync_playwright = None


def _chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = _chromium()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="needs Playwright (pip install -e '.[ui-test]')"),
]

REPO = Path(__file__).resolve().parents[1]
CI_SUBSET = REPO / "studies" / "ci_subset.toml"
# The UI needs runs and artifacts, not accuracy: one epoch keeps the store cheap to produce.
CI_OVERRIDES = ("train.epochs=1",)
PARENT_COLUMNS = ("war_mean", "uar_mean")
CHILD_COLUMNS = ("test_war", "test_uar")

SERVER_START_S = 90  # bound on the UI answering HTTP
UI_TIMEOUT_MS = 30_000  # bound on every browser wait


@dataclass(frozen=True)
class Store:
    uri: str
    experiment_id: str
    children: dict[str, list[str]]  # parent run name -> its child (fold) run names
    metrics: dict[str, dict[str, float]]  # run name -> metrics
    confusion_png: Path  # what the first child run logged as confusion.png

    @property
    def first_child(self) -> tuple[str, str]:
        parent = next(iter(self.children))
        return parent, self.children[parent][0]


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    command: list[str]


def artifact_dir(tmp_path: Path) -> Path:
    out = Path(os.environ["GEMO_CI_ARTIFACTS"]) if os.environ.get("GEMO_CI_ARTIFACTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (Linux ``/proc/net/tcp*``)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words))
    return found


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def stop_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Terminate the server and every process it started (they share its session), then reap it."""

    def signal_group(sig: int) -> bool:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return False  # the group is empty
        return True

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while signal_group(0):
        proc.poll()  # reap the leader so that the group can empty
        if time.monotonic() > deadline:
            signal_group(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait(timeout=grace_s)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """The CI subset run into a throw-away SQLite store."""
    root = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    study = load_study(CI_SUBSET, [f"tracking.uri={uri}", *CI_OVERRIDES])
    summary = run_study(study, progress=False)
    assert not summary.failed, summary.failed
    assert len(summary.trained) == len(study.cells())

    children: dict[str, list[str]] = {}
    for cell in study.cells():
        children.setdefault(run_name(cell), []).append(f"{run_name(cell)} fold {cell.fold}")
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    records = {r.tags["mlflow.runName"]: r for r in [*tracker.runs("config"), *tracker.runs("cell")]}
    assert set(records) == {*children, *(c for group in children.values() for c in group)}
    first = next(iter(children.values()))[0]
    logged = tracker.client.download_artifacts(records[first].run_id, "confusion.png", str(root))
    metrics = {name: dict(r.metrics) for name, r in records.items()}
    return Store(uri, tracker.experiment_id, children, metrics, Path(logged))


@pytest.fixture(scope="module")
def server(store: Store, tmp_path_factory) -> Iterator[Server]:
    """``mlflow ui`` on 127.0.0.1 and a free port, stopped (with its workers) at teardown."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "ui",
        "--backend-store-uri",
        store.uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # no background job runner: the UI alone is under test
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_path = tmp_path_factory.mktemp("ui-server") / "mlflow-ui.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow ui exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow ui did not answer within {SERVER_START_S} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
            yield Server(url, port, command)
        finally:
            stop_group(proc)


def test_server_listens_on_loopback_only(server: Server):
    assert server.command[server.command.index("--host") + 1] == "127.0.0.1"
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as response:
        assert response.status == 200
    if Path("/proc/net/tcp").exists():
        assert listening_addresses(server.port) == {"127.0.0.1"}


def test_ui_lists_runs_with_war_uar_and_renders_confusion_matrix(store: Store, server: Server, tmp_path: Path):
    out = artifact_dir(tmp_path)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            # wide enough that the metric columns are rendered: the runs table only draws visible columns
            viewport={"width": 2400, "height": 1200},
        )
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            context.set_default_navigation_timeout(UI_TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            try:
                check_experiment_page(page, store, server, out)
                check_confusion_artifact(page, store, out)
            except Exception:
                page.screenshot(path=str(out / "ui-failure.png"), full_page=True)
                print(f"screenshot of the failure: {out / 'ui-failure.png'}")
                raise
        finally:
            context.close()


def run_link(page, name: str):
    return page.get_by_role("link", name=name, exact=True)


def check_experiment_page(page, store: Store, server: Server, out: Path) -> None:
    # the experiment page, in its model-training view (the UI's own "Model training" switch)
    page.goto(f"{server.url}/#/experiments/{store.experiment_id}?workflowType=machine_learning")
    for parent in store.children:
        run_link(page, parent).wait_for(state="visible")
    close_assistant_panel(page)

    # child runs are nested: hidden until their parent is expanded, then listed right under it
    for children in store.children.values():
        for name in children:
            assert run_link(page, name).count() == 0, f"child run {name!r} listed at the top level"
    for parent, children in store.children.items():
        cell = page.get_by_role("gridcell").filter(has=run_link(page, parent))
        cell.get_by_role("button").click()  # the expand toggle beside the run name
        for name in children:
            run_link(page, name).wait_for(state="visible")
            top = row_index(page, parent)
            assert top < row_index(page, name) <= top + len(children), f"{name!r} is not under {parent!r}"

    show_metric_columns(page, [*PARENT_COLUMNS, *CHILD_COLUMNS])
    columns = {m: column_index(page, m) for m in [*PARENT_COLUMNS, *CHILD_COLUMNS]}
    for name, metrics in store.metrics.items():
        for m in PARENT_COLUMNS if name in store.children else CHILD_COLUMNS:
            shown = cell_text(page, row_index(page, name), columns[m])
            assert re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", shown), f"{name}: {m} shows {shown!r}"
            assert float(shown) == pytest.approx(metrics[m], abs=1e-3), f"{name}: {m}"

    widen_run_names(page)
    shot = out / "ui-experiment-runs.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def widen_run_names(page) -> None:
    """Fit the run-name column to its content so the screenshot shows whole names (cosmetic)."""
    resize = header(page, "Run Name").locator(".ag-header-cell-resize")
    if resize.count():
        resize.first.dblclick()


def close_assistant_panel(page) -> None:
    """The assistant side panel (open by default in MLflow 3) only narrows the runs table."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    try:
        close.first.wait_for(state="visible", timeout=5_000)
    except PlaywrightTimeout:
        return  # a UI without the panel
    close.first.click()


def show_metric_columns(page, metrics: list[str]) -> None:
    """Metric columns are hidden by default; tick them in the "Columns" selector."""
    page.get_by_role("button", name="Columns", exact=True).click()
    search = page.get_by_placeholder("Search columns")
    tree = page.get_by_test_id("column-selector-tree")
    for m in metrics:
        search.fill(m)
        tree.locator("[class*=treenode]").filter(has_text=exactly(m)).click()
    page.keyboard.press("Escape")
    for m in metrics:
        header(page, m).wait_for(state="visible")


def exactly(text: str) -> re.Pattern:
    """Matches an element whose whole text is ``text`` (surrounding whitespace aside)."""
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def header(page, text: str):
    return page.locator("[role=columnheader][aria-colindex]").filter(has_text=exactly(text))


def column_index(page, text: str) -> str:
    index = header(page, text).get_attribute("aria-colindex")
    assert index, f"no column {text!r}"
    return index


def row_index(page, run_name: str) -> int:
    row = page.get_by_role("row").filter(has=run_link(page, run_name))
    return int(row.get_attribute("aria-rowindex") or -1)


def cell_text(page, row: int, column: str) -> str:
    cell = page.locator(f'[role=row][aria-rowindex="{row}"] [role=gridcell][aria-colindex="{column}"]')
    return cell.inner_text().strip()


def check_confusion_artifact(page, store: Store, out: Path) -> None:
    parent, child = store.first_child
    run_link(page, child).click()
    page.get_by_text("Parent run", exact=True).wait_for(state="visible")
    run_link(page, parent).wait_for(state="visible")  # the child run page names its parent

    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("confusion.png", exact=True).click()
    image = page.get_by_role("img", name="confusion.png")
    image.wait_for(state="visible")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    rendered = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    box = image.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0

    assert tuple(rendered) == png_size(store.confusion_png)  # the image shown is the PNG the run logged

    shot = out / "ui-confusion-artifact.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
