"""Bulk helpers of the tracking module: artifacts of many runs in one read, logging chosen files."""

import dataclasses

import pytest
from sqlalchemy.exc import OperationalError

from benchmark.tracking import Tracker


def test_read_artifacts_reads_each_run_and_leaves_out_those_without_the_file(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", "bulk")
    parent = tracker.parent("cfg", "cfg", {}, {})
    ids = []
    for i in range(3):
        run_id = tracker.start_cell(parent, f"r{i}", {"fold": i}, {})
        folder = tmp_path / f"a{i}"
        (folder / "sub").mkdir(parents=True)
        if i != 1:
            (folder / "sub" / "p.csv").write_text(f"run {i}\n")
        (folder / "other.txt").write_text("x")
        tracker.log_artifacts(run_id, folder)
        tracker.end(run_id)
        ids.append(run_id)
    runs = tracker.runs("cell")
    assert all(r.artifact_uri.startswith("file:") for r in runs)
    got = tracker.read_artifacts(runs, "sub/p.csv")
    assert got == {ids[0]: b"run 0\n", ids[2]: b"run 2\n"}
    # a store whose artifacts are not on this disk goes through per-run downloads, in a thread pool
    remote = [dataclasses.replace(r, artifact_uri="mlflow-artifacts:/elsewhere") for r in runs]
    assert tracker.read_artifacts(remote, "sub/p.csv") == got
    # the per-run download path (used for remote stores) gives the same bytes, and None without the file
    (tmp_path / "dl").mkdir()
    assert tracker._download(ids[2], "sub/p.csv", str(tmp_path / "dl")) == b"run 2\n"
    assert tracker._download(ids[1], "sub/p.csv", str(tmp_path / "dl")) is None


def test_log_files_logs_only_the_given_files(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "files")
    run_id = tracker.study_run("files", {})
    for name in ("a.md", "b.png", "c.tmp"):
        (tmp_path / name).write_text(name)
    tracker.log_files(run_id, [tmp_path / "a.md", tmp_path / "b.png"], "reports")
    logged = {a.path for a in tracker.client.list_artifacts(run_id, "reports")}
    assert logged == {"reports/a.md", "reports/b.png"}


def _comparable(records):
    """Records with NaN metrics made comparable (NaN != NaN)."""
    return [
        (
            r.run_id,
            r.status,
            dict(r.params),
            {k: ("nan" if v != v else v) for k, v in r.metrics.items()},
            dict(r.tags),
            r.start_time,
            r.artifact_uri,
            r.end_time,
        )
        for r in records
    ]


@pytest.fixture
def mixed_store(tmp_path):
    """Runs of every kind and status, a deleted run, a NaN metric, a second experiment with the same tags."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker, other = Tracker(uri, "mixed"), Tracker(uri, "other")
    for t in (tracker, other):
        parent = t.parent("cfg", "cfg", {"alpha": 0.8, "model.class_words": ["neutral", "happy"]}, {"x": "y"})
        for i, status in enumerate(["FINISHED", "FINISHED", "RUNNING", "KILLED", "FINISHED"]):
            run_id = t.start_cell(parent, f"c{i}", {"fold": i, "alpha": 0.8}, {"gemo.cell_id": f"c{i}"})
            t.log_metrics(run_id, {"test_uar": 0.5 + i / 100, "test_war": float("nan") if i == 1 else 0.4})
            if status != "RUNNING":
                t.client.set_terminated(run_id, status)
            if i == 4:
                t.client.delete_run(run_id)
        t.study_run("mixed" if t is tracker else "other", {"gemo.note": "é ünïcode"})
    return tracker


@pytest.mark.parametrize(
    ("kind", "status"), [("cell", None), ("cell", "FINISHED"), ("cell", "RUNNING"), ("config", None), ("study", None)]
)
def test_read_runs_gives_the_records_search_runs_gives(mixed_store, kind, status):
    fast = mixed_store.read_runs(kind, status)
    assert mixed_store._engine is not None  # the table read ran (no fallback)
    assert _comparable(fast) == _comparable(mixed_store.runs(kind, status))
    assert fast, "the fixture has runs of every kind asked for"


def test_read_runs_counts_and_filters(mixed_store):
    cells = mixed_store.read_runs("cell")
    assert len(cells) == 4  # the deleted run is left out, the other experiment's runs too
    assert [r.status for r in mixed_store.read_runs("cell", "FINISHED")] == ["FINISHED", "FINISHED"]
    nan = next(r for r in cells if r.tags["gemo.cell_id"] == "c1")
    assert nan.metrics["test_war"] != nan.metrics["test_war"] and nan.metrics["test_uar"] == pytest.approx(0.51)
    assert nan.params == {"fold": "1", "alpha": "0.8"}


def test_read_runs_falls_back_to_the_api_when_the_tables_differ(mixed_store, monkeypatch):
    def unexpected_schema(*args):
        raise OperationalError("SELECT ...", {}, Exception("no such column: is_nan"))

    monkeypatch.setattr(mixed_store, "_sql_runs", unexpected_schema)
    assert _comparable(mixed_store.read_runs("cell")) == _comparable(mixed_store.runs("cell"))
