"""The throughput benchmark through the real CLI: fields and internal consistency of its JSON (never timings)."""

import json
import math

import pytest

from benchmark.cli import main

LOOP_KEYS = {
    "loop",
    "steps",
    "utterances",
    "audio_seconds",
    "seconds",
    "audio_s_per_s",
    "utterances_per_s",
    "model_flops",
    "model_flops_per_s",
    "mfu",
    "peak_memory_bytes",
}


def bench(tmp_path, capsys, *extra):
    out = tmp_path / "perf" / "throughput.json"
    code = main(["bench", "throughput", "--warmup", "1", "--json", str(out), *extra])
    printed = capsys.readouterr().out
    assert code == 0, printed
    return json.loads(out.read_text()), printed


def check_consistency(r):
    naive, suite = r["naive"], r["suite"]
    assert set(naive) == set(suite) == LOOP_KEYS
    pool = r["durations"]
    for loop in (naive, suite):
        # both loops make one pass over the same pool
        assert loop["utterances"] == pool["pool_utterances"]
        assert loop["audio_seconds"] == pytest.approx(pool["pool_audio_seconds"])
        assert loop["seconds"] > 0 and loop["steps"] >= 1
        assert loop["audio_s_per_s"] == pytest.approx(loop["audio_seconds"] / loop["seconds"])
        assert loop["utterances_per_s"] == pytest.approx(loop["utterances"] / loop["seconds"])
        # the same useful work counts for both, whatever padding or redundant prompts a loop adds
        assert loop["model_flops"] == pytest.approx(suite["model_flops"])
        assert loop["model_flops_per_s"] == pytest.approx(loop["model_flops"] / loop["seconds"])
        if r["peak_flops"]["flops"]:
            assert loop["mfu"] == pytest.approx(loop["model_flops_per_s"] / r["peak_flops"]["flops"])
    assert r["flops"]["per_audio_second"] == pytest.approx(suite["model_flops"] / pool["pool_audio_seconds"])
    assert abs(r["flops"]["check"]["relative_error"]) < 0.01
    assert r["speedup"] == pytest.approx(suite["audio_s_per_s"] / naive["audio_s_per_s"])
    assert naive["steps"] == math.ceil(pool["pool_utterances"] / r["config"]["naive_batch"])
    s = r["study"]
    assert s["hours_naive"] == pytest.approx(s["train_audio_seconds"] / naive["audio_s_per_s"] / 3600)
    assert s["hours_suite"] == pytest.approx(s["train_audio_seconds"] / suite["audio_s_per_s"] / 3600)
    assert r["versions"]["torch"] and r["versions"]["transformers"] and r["git_sha"]


def test_cpu_run_with_tiny_presets(tmp_path, capsys):
    r, printed = bench(
        tmp_path,
        capsys,
        *("--device", "cpu", "--utterances", "16", "--max-seconds", "1.5", "--batch-seconds", "8", "--batch-size", "8"),
    )
    check_consistency(r)
    assert r["device_type"] == "cpu" and r["device"].startswith("cpu")
    assert r["audio_encoder"] == "tiny-wavlm" and r["text_encoder"] == "tiny-roberta"  # CPU defaults
    assert r["naive"]["peak_memory_bytes"] is None and "measured" in r["peak_flops"]["source"]
    assert r["config"]["train"]["batch_seconds"] == 8.0 and r["config"]["train"]["precision"] == "auto"
    assert r["durations"]["crop_seconds"] == 1.5 and r["durations"]["pool_mean_seconds"] <= 1.5
    assert r["durations"]["mean"] == pytest.approx(4.53, rel=1e-3)  # the distribution the pool is drawn from
    # the suite steps over budget batches: none holds more than 8 s of (padded) audio or 8 utterances
    assert r["suite"]["steps"] >= max(math.ceil(r["suite"]["audio_seconds"] / 8.0), math.ceil(16 / 8))
    assert r["study"]["study"] == "paper_table" and r["study"]["cells"] == 60
    assert "speed-up" in printed and "paper_table" in printed and "n/a (CPU)" in printed


def test_suite_only_times_the_suite_step_alone(tmp_path, capsys):
    r, printed = bench(
        tmp_path,
        capsys,
        *("--device", "cpu", "--utterances", "8", "--max-seconds", "1", "--batch-seconds", "4", "--suite-only"),
    )
    assert r["naive"] is None and r["speedup"] is None and r["config"]["naive"] is False
    suite = r["suite"]
    assert suite["utterances"] == 8 and suite["audio_s_per_s"] == pytest.approx(
        suite["audio_seconds"] / suite["seconds"]
    )
    assert r["study"]["hours_naive"] is None
    assert r["study"]["hours_suite"] == pytest.approx(r["study"]["train_audio_seconds"] / suite["audio_s_per_s"] / 3600)
    assert "naive loop" not in printed and "speed-up: not measured (suite step only)" in printed
    assert "GPU-h" not in printed and "with the suite's step" in printed


@pytest.mark.gpu
# seed_everything asks for deterministic algorithms with warn_only=True (as every cell does); on CUDA, kernels
# without a deterministic version (embedding backward, memory-efficient attention backward) then warn
@pytest.mark.filterwarnings("ignore:.*does not have a deterministic implementation:UserWarning")
@pytest.mark.filterwarnings("ignore:Memory Efficient attention defaults to a non-deterministic:UserWarning")
def test_cuda_run_with_the_base_preset(tmp_path, capsys):
    r, _ = bench(
        tmp_path,
        capsys,
        *("--device", "cuda", "--audio-encoder", "wavlm-base-plus", "--text-encoder", "roberta-base"),
        *("--utterances", "128", "--warmup", "2"),
    )
    check_consistency(r)
    assert r["device_type"] == "cuda" and not r["device"].startswith("cpu")
    assert r["weights"]["audio"] == "random-init (architecture of wavlm-base-plus)"
    assert r["naive"]["peak_memory_bytes"] > 0 and r["suite"]["peak_memory_bytes"] > 0
    assert 1e9 < r["flops"]["per_audio_second"] < 1e12
