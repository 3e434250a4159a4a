"""Studies run for real: MLflow SQLite stores, subprocesses, SIGKILL, concurrent workers."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.data.records import CLASSES
from benchmark.runner import run_study
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri

STUDY = """
name = "mini"
[data]
corpus = "embedded"
size = 100
[encoders]
audio = ["tiny-wav2vec2"]
text = "tiny-roberta"
[method]
variants = ["emo-clap", "sl-gemo-clap"]
alphas = [0.8]
[model]
proj_dim = 16
[train]
epochs = {epochs}
batch_size = 8
max_seconds = 1.0
[protocol]
folds = [1, 2]
[tracking]
uri = "{uri}"
"""

pytestmark = pytest.mark.slow


def make_study(tmp_path, epochs=1):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "mini.toml"
    path.write_text(STUDY.format(epochs=epochs, uri=uri))
    return path


def cli(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *args],
        cwd=cwd,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished_cell_ids(tracker):
    return Counter(r.tags["gemo.cell_id"] for r in tracker.runs("cell", "FINISHED"))


def test_run_logs_parents_children_artifacts_and_resumes(tmp_path):
    study = load_study(make_study(tmp_path))
    summary = run_study(study, progress=False)
    assert len(summary.trained) == 4 and not summary.failed and not summary.skipped

    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    parents = tracker.runs("config")
    children = tracker.runs("cell")
    assert len(parents) == 2 and len(children) == 4
    parent_ids = {p.run_id for p in parents}
    assert {c.tags["mlflow.parentRunId"] for c in children} == parent_ids
    for c in children:
        assert c.status == "FINISHED"
        assert {"test_war", "test_uar", "test_war_F", "test_uar_M"} <= set(c.metrics)
        assert c.params["train.lr"] == "0.003" and c.params["fold"] in {"1", "2"}
        assert len(c.tags["gemo.git_sha"]) >= 7 and c.tags["gemo.data_source"] == "embedded"
        assert c.tags["gemo.weights"] == "random-init (tiny-wav2vec2)"
        assert c.tags["gemo.device"].startswith("cpu")
        history = tracker.client.get_metric_history(c.run_id, "val_uar")
        assert [m.step for m in history] == [1]
        names = {a.path for a in tracker.client.list_artifacts(c.run_id)}
        assert {
            "confusion.png",
            "confusion.csv",
            "confusion_F.png",
            "confusion_M.csv",
            "predictions.csv",
            "cell_spec.json",
            "metrics.json",
            "embeddings.npz",
        } <= names
        assert "model" not in names  # tracking.log_models is off by default
    for p in parents:
        mine = [c for c in children if c.tags["mlflow.parentRunId"] == p.run_id]
        assert p.metrics["folds"] == 2
        assert p.metrics["uar_mean"] == pytest.approx(sum(c.metrics["test_uar"] for c in mine) / 2)

    again = run_study(study, progress=False)
    assert again.trained == [] and len(again.skipped) == 4
    assert len(tracker.runs("cell")) == 4


def test_log_models_keeps_each_cells_model_and_it_scores_and_embeds_as_logged(tmp_path):
    from benchmark.models.saved import evaluate_records, load_model, utterance_loader
    from benchmark.train import embed_split

    study = load_study(make_study(tmp_path), ["tracking.log_models=true", 'method.variants=["sl-gemo-clap"]'])
    assert run_study(study, progress=False).trained
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    records = study.data.load()
    for cell in tracker.runs("cell", "FINISHED"):
        model = load_model(f"runs:/{cell.run_id}/model", tracking_uri=tracker.uri)
        fold = int(cell.params["fold"])
        assert model.info["spec"]["fold"] == fold and model.info["test"]["uar"] == cell.metrics["test_uar"]
        test_records = sorted((r for r in records if r.test_fold == fold), key=lambda r: r.id)
        test, _ = evaluate_records(model, test_records)
        assert test["war"] == cell.metrics["test_war"] and test["uar"] == cell.metrics["test_uar"]
        assert not model.training_ids & {r.id for r in records if r.test_fold == fold}

        # embeddings.npz: what this model gives each test utterance, beside the logged predictions
        folder = tmp_path / cell.run_id
        npz = np.load(tracker.client.download_artifacts(cell.run_id, "embeddings.npz", str(folder)))
        preds = pd.read_csv(tracker.client.download_artifacts(cell.run_id, "predictions.csv", str(folder)))
        assert list(npz["id"]) == [r.id for r in test_records] == list(preds["id"])
        assert list(npz["gender"]) == [r.gender for r in test_records]
        assert list(npz["speaker"]) == [r.speaker for r in test_records]
        assert list(npz["emotion"]) == [r.emotion for r in test_records]
        assert list(npz["predicted"]) == list(preds["predicted"]) and list(npz["classes"]) == list(CLASSES)
        assert npz["audio"].dtype == np.float16 and npz["audio"].shape == (len(test_records), 16)
        index, _, y_pred, audio, prompts = embed_split(
            model, utterance_loader(model, test_records), torch.device("cpu"), "fp32"
        )
        order = np.argsort(index)
        np.testing.assert_allclose(npz["audio"].astype(np.float32), audio[order], atol=1e-3)  # float16 storage
        np.testing.assert_allclose(npz["prompts"], prompts, atol=1e-6)
        assert list(np.asarray(CLASSES)[y_pred[order]]) == list(npz["predicted"])


def test_log_embeddings_off_logs_none(tmp_path):
    overrides = ["tracking.log_embeddings=false", 'method.variants=["emo-clap"]', "protocol.folds=[1]"]
    study = load_study(make_study(tmp_path), overrides)
    assert run_study(study, progress=False).trained
    (cell,) = Tracker(resolve_uri(study.tracking.uri), study.experiment_name).runs("cell", "FINISHED")
    names = {
        a.path
        for a in Tracker(resolve_uri(study.tracking.uri), study.experiment_name).client.list_artifacts(cell.run_id)
    }
    assert "predictions.csv" in names and "embeddings.npz" not in names


def test_table_report_reads_runs_and_is_reproducible(tmp_path):
    from benchmark.reports.table import write_table_report

    study = load_study(make_study(tmp_path))
    run_study(study, progress=False)
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    first = write_table_report(tracker, study.name, study.encoders.audio, 2, tmp_path / "reports")
    csv1 = first.csv.read_text()
    second = write_table_report(tracker, study.name, study.encoders.audio, 2, tmp_path / "reports")
    assert second.csv.read_text() == csv1
    frame = first.frame
    assert list(frame["variant"]) == ["emo-clap", "sl-gemo-clap"]
    children = tracker.runs("cell", "FINISHED")
    emo = [c.metrics["test_war"] for c in children if c.params["variant"] == "emo-clap"]
    assert frame.loc[0, "war_mean"] == pytest.approx(sum(emo) / len(emo))
    md = first.markdown.read_text()
    assert "embedded corpus" in md and "random-init (tiny-wav2vec2)" in md
    assert "83.16" not in md  # the paper's only readable figure is WavLM's; none for wav2vec 2.0
    study_runs = tracker.runs("study")
    assert len(study_runs) == 1
    logged = {a.path for a in tracker.client.list_artifacts(study_runs[0].run_id, "reports")}
    assert logged == {"reports/table.md", "reports/table.csv", "reports/table.tex", "reports/table.png"}

    # the learning curves of the same runs: each epoch's mean over folds of what the runs logged per epoch
    from benchmark.reports.curves import write_curves_report

    curves = write_curves_report(tracker, study.name, tmp_path / "reports").curves
    assert sorted(set(curves["epoch"])) == [1]  # make_study trains 1 epoch
    for variant, rows in curves.groupby("variant"):
        runs = [c for c in children if c.params["variant"] == variant]
        history = [tracker.client.get_metric_history(c.run_id, "val_uar") for c in runs]
        assert [[m.step for m in h] for h in history] == [[1]] * len(runs)
        assert rows["val_uar_mean"].item() == pytest.approx(sum(h[0].value for h in history) / len(runs))


def test_sigkill_mid_cell_then_rerun_completes_each_cell_once(tmp_path):
    path = make_study(tmp_path, epochs=4)
    study = load_study(path)
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    proc = cli("run", str(path), "--no-progress", cwd=tmp_path)
    deadline = time.monotonic() + 240
    victim = None
    while time.monotonic() < deadline and victim is None:
        running = tracker.runs("cell", "RUNNING")
        # kill once a cell is mid-training: its run exists and has logged at least one epoch
        if running and tracker.client.get_metric_history(running[0].run_id, "val_uar"):
            victim = running[0]
        else:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
    assert victim is not None, "no cell reached its first epoch in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert tracker.client.get_run(victim.run_id).info.status == "RUNNING"  # left behind by the kill

    # Even a study that no longer contains the killed cell marks its orphaned run on the next `run`.
    other = load_study(path, ["protocol.folds=[3]"])
    run_study(other, progress=False)
    assert tracker.client.get_run(victim.run_id).info.status == "KILLED"

    rerun = cli("run", str(path), "--no-progress", cwd=tmp_path)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    counts = finished_cell_ids(tracker)
    assert len(counts) == 4 + 2 and set(counts.values()) == {1}  # + the 2 cells of fold 3
    assert victim.tags["gemo.cell_id"] in counts  # the killed cell ran again, to completion
    assert not tracker.runs("cell", "RUNNING")


def test_two_workers_and_two_processes_never_duplicate_a_cell(tmp_path):
    path = make_study(tmp_path)
    # two concurrent `run` processes, each with two workers, on one study
    procs = [cli("run", str(path), "--workers", "2", "--no-progress", cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    study = load_study(path)
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    counts = finished_cell_ids(tracker)
    assert len(counts) == 4 and set(counts.values()) == {1}, counts
    assert len(tracker.runs("cell")) == 4  # no extra run of any status
    assert len(tracker.runs("config")) == 2
