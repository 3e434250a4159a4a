"""``gemo-bench check``: every problem a study's cells would stop on, found at once, before anything runs.

Real parts throughout: corpora on disk read by their readers, checkpoints in a Hugging Face cache laid out as
the hub client lays it out and loaded by ``transformers`` offline, MLflow stores, Optuna journals, and
``sbatch``/``sinfo`` stand-ins for the cluster (the one part that cannot run here). The hub's HTTP API is
replaced only in the download test, at the client's two calls.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, Wav2Vec2FeatureExtractor

from benchmark.cli import main
from benchmark.data.folds import split_fold
from benchmark.data.synthetic import SynthConfig, write_corpus
from benchmark.models.presets import TINY_PRESETS, hub_config
from benchmark.preflight import check_study
from benchmark.runner import run_study
from benchmark.studies import load_study

STUDY = """
name = "pre"
[data]
{data}
[encoders]
audio = {audio}
text = "tiny-roberta"
[method]
variants = ["emo-clap"]
[model]
proj_dim = 16
[train]
epochs = 2
batch_size = 8
max_seconds = 1.0
{train}
[protocol]
folds = [1, 2]
[tracking]
uri = "{uri}"
{extra}
"""


def write_study(
    tmp_path: Path,
    *,
    data: str = 'corpus = "embedded"\nsize = 100',
    audio: str = '["tiny-wavlm"]',
    train: str = "",
    uri: str | None = None,
    extra: str = "",
) -> Path:
    path = tmp_path / "pre.toml"
    uri = uri or f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    path.write_text(STUDY.format(data=data, audio=audio, train=train, uri=uri, extra=extra))
    return path


def by_area(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.area, []).append(f)
    return out


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def tiny_checkpoint(folder: Path) -> int:
    """A tiny WavLM written by ``save_pretrained`` with its feature extractor; returns its parameter count."""
    model = AutoModel.from_config(TINY_PRESETS["tiny-wavlm"].make_config())
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def cache_checkpoint(cache: Path, repo_id: str, src: Path) -> Path:
    """Put a checkpoint into a Hugging Face hub cache as the hub client does: snapshot plus ``refs/main``."""
    org, name = repo_id.split("/")
    repo = cache / f"models--{org}--{name}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(src, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_embedded_study_is_ready_and_nothing_is_written(tmp_path, capsys):
    path = write_study(tmp_path)
    before = tree(tmp_path)
    code = main(["check", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert tree(tmp_path) == before  # no store, no lock folder, no probe file left behind
    lines = out.splitlines()
    assert lines[0] == "pre: 2 cells, 0 finished"
    levels = {line.split()[0] for line in lines[2:] if line[:4] in ("OK  ", "WARN", "FAIL")}
    assert levels == {"OK"}, out
    assert any("encoder audio tiny-wavlm" in line and "random-init, built in code" in line for line in lines)
    assert "embedded corpus at" in out and "100 utterances" in out
    assert lines[-1] == f"ready: 0 warning(s); next: gemo-bench run {path}"


@pytest.mark.slow
def test_finished_cells_are_counted_and_the_work_left_is_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = write_study(tmp_path)
    run_study(load_study(path, ["protocol.folds=[1]"]), progress=False)
    study = load_study(path)
    result = check_study(study)
    assert result.finished == 1 and not result.failed
    store = by_area(result)["store"][0]
    assert store.level == "ok" and "1 of the 2 cells finished" in store.detail
    # the slow reference: the one cell left (fold 2), 2 epochs over its training split, 1 s crops
    records = study.data.load()
    fold = split_fold(records, 2, val_fraction=0.1, val_strategy="stratified", seed=0)
    expected = 2 * sum(min(r.duration, 1.0) for r in fold.train)
    assert result.train_audio_seconds == pytest.approx(expected)


def test_problems_are_reported_together_naming_the_file(tmp_path, monkeypatch, capsys):
    root = write_corpus(tmp_path / "IEMOCAP_full_release", SynthConfig(seed=0, size=100))
    broken = sorted(root.rglob("*.wav"))[7]
    broken.write_bytes(broken.read_bytes()[:30])  # a truncated header
    (tmp_path / "file").write_text("a file where the store's folder should be\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no sbatch on this "login node"
    path = write_study(
        tmp_path,
        data=f'corpus = "iemocap"\nroot = "{root}"',
        train='device = "cuda"',
        uri=f"sqlite:///{tmp_path / 'file' / 'store' / 'mlflow.db'}",
        extra='[executor]\nkind = "slurm"\ngpus_per_task = 0',
    )
    if torch.cuda.is_available():
        pytest.skip("checks the finding for a machine without CUDA")
    code = main(["check", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    fails: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("FAIL"):
            fails.setdefault(line.split()[1], []).append(line)
    assert {k: len(v) for k, v in fails.items()} == {"store": 1, "data": 1, "device": 1, "executor": 2}, out
    assert f"{tmp_path / 'file'} is not a directory" in fails["store"][0]
    assert broken.name in fails["data"][0] and "not a readable audio file" in fails["data"][0]
    assert "executor.gpus_per_task = 0" in fails["device"][0]
    assert "submitit's folder is not writable" in fails["executor"][0]
    assert "sbatch is not on PATH" in fails["executor"][1]
    assert out.splitlines()[-1].startswith("5 problem(s) would stop cells of this study")
    assert not (tmp_path / "IEMOCAP_full_release" / ".gemo").exists()


def test_checkpoints_in_the_hub_cache_load_offline_and_missing_ones_are_named(tmp_path):
    cache = tmp_path / "hub"
    n = tiny_checkpoint(tmp_path / "ckpt")
    cache_checkpoint(cache, "acme/tiny-wavlm", tmp_path / "ckpt")
    local = tmp_path / "local-ckpt"
    tiny_checkpoint(local)
    (local / "model.safetensors").unlink()  # a local checkpoint whose weights went missing
    path = write_study(tmp_path, audio=f'["acme/tiny-wavlm", "acme/not-downloaded", "{local}"]')
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = run_cli(["check", str(path), "--json"], env, tmp_path)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    found = {f["subject"]: f for f in result["findings"] if f["area"] == "encoder"}
    assert found["audio acme/tiny-wavlm"]["level"] == "ok"
    assert "from the Hugging Face cache" in found["audio acme/tiny-wavlm"]["detail"]
    assert result["params"]["acme/tiny-wavlm"] == n
    missing = found["audio acme/not-downloaded"]
    assert missing["level"] == "fail" and str(cache) in missing["detail"]
    assert f"gemo-bench check {path} --download" in missing["detail"]
    assert "hf download acme/not-downloaded" in missing["detail"]
    broken = found[f"audio {local}"]
    assert broken["level"] == "fail" and "does not load" in broken["detail"], broken
    assert result["params"][str(local)] is None

    online = {k: v for k, v in env.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    result = json.loads(run_cli(["check", str(path), "--json"], online, tmp_path).stdout)
    missing = next(f for f in result["findings"] if f["subject"] == "audio acme/not-downloaded")
    assert missing["level"] == "warn" and "each task downloads it on first load" in missing["detail"]


DOWNLOAD_DRIVER = """
import json, shutil, sys
from pathlib import Path

import huggingface_hub

src, cache, log = map(Path, sys.argv[1:4])
REPO_FILES = [
    "README.md", "config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin",
    "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx", "tokenizer_config.json",
]

# The hub's HTTP API is the one part replaced: the listing, and the download, which writes the files the
# real client would write, in the cache's own layout.
def list_repo_files(self, repo_id, **kwargs):
    return REPO_FILES

def snapshot_download(repo_id, allow_patterns=None, **kwargs):
    log.write_text(json.dumps({"repo": repo_id, "allow_patterns": allow_patterns}))
    org, name = repo_id.split("/")
    repo = cache / f"models--{org}--{name}"
    snapshot = repo / "snapshots" / ("f" * 40)
    shutil.copytree(src, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("f" * 40)
    return str(snapshot)

huggingface_hub.HfApi.list_repo_files = list_repo_files
huggingface_hub.snapshot_download = snapshot_download
from benchmark.cli import main
sys.exit(main(sys.argv[4:]))
"""


def test_download_fetches_what_from_pretrained_reads_then_checks_it(tmp_path):
    n = tiny_checkpoint(tmp_path / "ckpt")
    cache, log = tmp_path / "hub", tmp_path / "download.json"
    path = write_study(tmp_path, audio='["acme/tiny-wavlm"]')
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    args = [str(tmp_path / "ckpt"), str(cache), str(log), "check", str(path), "--download", "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", DOWNLOAD_DRIVER, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    asked = json.loads(log.read_text())
    # safetensors only (transformers prefers them), no TensorFlow, Flax or ONNX files, no README
    assert asked == {
        "repo": "acme/tiny-wavlm",
        "allow_patterns": ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json"],
    }
    result = json.loads(proc.stdout)
    (finding,) = [f for f in result["findings"] if f["area"] == "encoder" and "acme" in f["subject"]]
    assert finding["level"] == "ok" and result["params"]["acme/tiny-wavlm"] == n


def test_disk_estimate_counts_training_states_and_saved_models(tmp_path):
    # wavlm-base-plus is not downloaded here: its size comes from the architecture the suite ships
    path = write_study(
        tmp_path,
        audio='["wavlm-base-plus", "tiny-wavlm"]',
        train="resumable = true",
        extra="log_models = true",
    )
    result = check_study(load_study(path), workers=3)
    base = sum(p.numel() for p in AutoModel.from_config(hub_config("wavlm-base-plus")).parameters())
    tiny = sum(p.numel() for p in AutoModel.from_config(TINY_PRESETS["tiny-wavlm"].make_config()).parameters())
    text = result.params["tiny-roberta"]
    assert result.params["wavlm-base-plus"] == base and result.params["tiny-wavlm"] == tiny
    # the largest cell's state, 3 workers at once; every cell's fp32 audio encoder (2 folds each)
    assert result.disk == {
        "states": 4 * 4 * (base + text) * 3,  # weights, two AdamW moments, best weights
        "models": 2 * 4 * base + 2 * 4 * tiny,
        "running": 3,
        "unknown": [],
    }
    (disk,) = by_area(result)["disk"]
    assert f"{result.disk['states'] / 1e9:.1f} GB of training states (3 cells at once)" in disk.detail


def test_a_small_disk_fails_with_what_to_change(tmp_path):
    from tests.test_faults import _mount_tmpfs

    small = tmp_path / "small"
    small.mkdir()
    if not _mount_tmpfs(small, "size=256k"):
        pytest.skip("needs permission to mount a small tmpfs")
    try:
        path = write_study(tmp_path, uri=f"sqlite:///{small / 'mlflow.db'}", train="resumable = true")
        result = check_study(load_study(path))
        (disk,) = by_area(result)["disk"]
        assert disk.level == "fail", disk
        assert "run fewer cells at once" in disk.detail
        assert by_area(result)["store"][0].level == "ok"  # room for a probe, not for the states
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _stand_in(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_slurm_partition_is_checked_with_sinfo(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "sbatch", 'echo "Submitted batch job 1"\n')
    _stand_in(bin_dir, "sinfo", 'echo "cpu*"\necho "gpu"\necho "gpu"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = write_study(tmp_path, extra='[executor]\nkind = "slurm"\npartition = "gpu"')
    found = by_area(check_study(load_study(path)))["executor"]
    assert [f.level for f in found if f.detail.startswith("partition")] == ["ok"]
    # a store under /tmp (where pytest's tmp_path usually is), which compute nodes do not share, is a warning
    under_tmp = str(tmp_path.resolve()).startswith("/tmp/")
    assert any(f.level == "warn" and "do not share" in f.detail for f in found) == under_tmp, found

    found = by_area(check_study(load_study(path, ["executor.partition=a100"])))["executor"]
    (bad,) = [f for f in found if f.level == "fail"]
    assert "partition 'a100' not found (sinfo lists: cpu, gpu, gpu)" in bad.detail


def test_an_unreachable_tracking_server_is_a_finding_not_a_wait(tmp_path):
    path = write_study(tmp_path, uri="http://127.0.0.1:9")  # the discard port: connection refused
    start = time.monotonic()
    result = check_study(load_study(path))
    assert time.monotonic() - start < 60
    (store,) = by_area(result)["store"]
    assert store.level == "fail" and "cannot read the MLflow store" in store.detail, store


def test_search_storage_is_checked_when_the_study_has_a_search(tmp_path):
    path = write_study(tmp_path, extra="[search]\ntrials = 4")
    (search,) = by_area(check_study(load_study(path)))["search"]
    assert search.level == "ok" and search.detail == "no search begun yet"
    (tmp_path / "afile").write_text("x\n")
    result = check_study(load_study(path, [f'search.storage="{tmp_path / "afile" / "s.journal"}"']))
    (search,) = by_area(result)["search"]
    assert search.level == "fail" and "afile is not a directory" in search.detail
    plain = write_study(tmp_path)
    assert "search" not in by_area(check_study(load_study(plain)))
    assert "search" in by_area(check_study(load_study(plain), search=True))


def test_a_search_check_names_the_search_as_the_next_step(tmp_path, capsys):
    path = write_study(tmp_path, extra="[search]\ntrials = 4")
    assert main(["check", str(path), "--search"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"ready: 0 warning(s); next: gemo-bench search {path}"


def test_a_fold_without_one_gender_is_a_warning(tmp_path, small_records):
    # a manifest whose fold 2 holds only female speakers
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "emotion", "gender", "speaker", "fold"])
        for r in small_records:
            fold = 2 if r.gender == "F" and r.session in (1, 2) else 1
            w.writerow([r.path, r.emotion, r.gender, r.speaker, fold])
    path = write_study(tmp_path, data=f'corpus = "manifest"\nroot = "{manifest}"')
    result = check_study(load_study(path))
    warns = [f for f in by_area(result)["data"] if f.level == "warn"]
    assert [(f.subject, f.detail.split(":")[0]) for f in warns] == [("fold 2", "its test set has no M utterance")]


def test_a_dialog_subset_is_named_and_counted(tmp_path):
    study = load_study(write_study(tmp_path), ['data.subset="improvised"'])
    data = by_area(check_study(study))["data"][0]  # the corpus; fold findings may follow
    n = len(study.data.load())
    assert n < 100
    assert data.level == "ok" and "embedded corpus (improvised dialogs) at " in data.detail
    assert f": {n} utterances" in data.detail


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the findings for a machine without CUDA")
def test_device_findings_without_cuda(tmp_path):
    def device(audio: str, *overrides: str):
        path = write_study(tmp_path, audio=audio)
        (finding,) = by_area(check_study(load_study(path, list(overrides))))["device"]
        return finding.level, finding.detail

    assert device('["tiny-wavlm"]') == ("ok", f"no CUDA on this machine (torch {torch.__version__}): CPU, fp32")
    level, detail = device('["tiny-wavlm"]', 'train.precision="bf16"')
    assert level == "ok" and detail.endswith("CPU, bf16 autocast")
    level, detail = device('["wavlm-base-plus"]')
    assert level == "warn" and "would fine-tune on CPU" in detail
    level, detail = device('["tiny-wavlm"]', 'train.device="cuda:1"')
    assert level == "fail" and "train.device = 'cuda:1'" in detail
    level, detail = device('["wavlm-base-plus"]', 'executor.kind="slurm"', "executor.gpus_per_task=0")
    assert level == "warn" and "executor.gpus_per_task = 0" in detail
    level, detail = device('["wavlm-base-plus"]', 'executor.kind="slurm"')
    assert level == "ok" and detail.endswith("each Slurm task asks for 1 GPU(s)")


def test_the_feature_cache_is_checked_for_frozen_encoders(tmp_path, monkeypatch):
    path = write_study(tmp_path, train='freeze_encoders = "audio"')
    (tmp_path / "cache-file").write_text("a file where GEMO_CACHE's folder should be\n")
    assert "cache" not in by_area(check_study(load_study(path, ['train.freeze_encoders="none"'])))
    (cache,) = by_area(check_study(load_study(path)))["cache"]
    assert cache.level == "ok"
    monkeypatch.setenv("GEMO_CACHE", str(tmp_path / "cache-file"))
    study = load_study(path, ['data.corpus="iemocap"', f'data.root="{tmp_path}"'])  # no corpus generation
    (cache,) = by_area(check_study(study))["cache"]
    assert cache.level == "fail" and "cache-file is not a directory" in cache.detail
