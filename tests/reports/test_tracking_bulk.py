"""Bulk helpers of the tracking module: artifacts of many runs in one read, logging chosen files."""

import dataclasses

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
