"""The throughput matrix: real child processes of the benchmark, their outcomes, the summary's arithmetic."""

import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.models.presets import PRESET_NAMES
from benchmark.perf.cost import study_train_audio_seconds
from benchmark.perf.matrix import (
    CPU_MATRIX,
    GPU_MATRIX,
    LARGE_PRESETS,
    Entry,
    Outcome,
    device_tag,
    run_matrix,
    select,
    study_hours,
)
from benchmark.studies import load_study

STUDIES = Path(__file__).parents[2] / "studies"
EMBEDDED = STUDIES / "paper_table_embedded.toml"
SMALL = ["--device", "cpu", "--study", str(EMBEDDED), "--utterances", "8", "--max-seconds", "1", "--warmup", "1"]


@pytest.mark.slow
def test_cpu_matrix_through_the_cli(tmp_path, capsys):
    out = tmp_path / "perf"
    # --only keeps the matrix's order; the study, crop, pool size and warm-up reach every child
    code = main(["bench", "throughput-matrix", "--out", str(out), "--only", "tiny-wavlm_gc", "tiny-wavlm", *SMALL])
    printed = capsys.readouterr().out
    assert code == 0, printed
    record = json.loads((out / "throughput_cpu_matrix.json").read_text())
    assert [e["name"] for e in record["entries"]] == ["tiny-wavlm", "tiny-wavlm_gc"]
    assert all(e["status"] == "ok" for e in record["entries"]), record
    plain, gc = (json.loads(Path(e["json"]).read_text()) for e in record["entries"])
    for r in (plain, gc):
        assert r["audio_encoder"] == "tiny-wavlm" and r["durations"]["pool_utterances"] == 8
        assert r["durations"]["crop_seconds"] == 1.0 and r["study"]["study"] == "paper_table_embedded"
    # the plain entry times both loops, its option variant the suite step alone
    assert plain["naive"] is not None and plain["speedup"] > 0 and not plain["config"]["train"]["grad_checkpointing"]
    assert gc["naive"] is None and gc["speedup"] is None and gc["config"]["train"]["grad_checkpointing"]
    assert "--grad-checkpointing" in Path(record["entries"][1]["log"]).read_text().splitlines()[0]

    # the study's hours: each encoder's cells at that encoder's default-option speed; the rest unmeasured
    study = load_study(EMBEDDED)
    hours = record["study_hours"]
    wavlm = study_train_audio_seconds(study, cells=[c for c in study.cells() if c.audio_encoder == "tiny-wavlm"])
    assert hours["by_encoder"]["tiny-wavlm"]["audio_s_per_s"] == plain["suite"]["audio_s_per_s"]
    assert hours["by_encoder"]["tiny-wavlm"]["hours"] == pytest.approx(
        wavlm["train_audio_seconds"] / plain["suite"]["audio_s_per_s"] / 3600
    )
    assert sorted(hours["missing"]) == ["tiny-data2vec", "tiny-hubert", "tiny-wav2vec2"] and hours["hours"] is None
    # the four encoders' cells make up the whole study
    total = sum(v["train_audio_seconds"] for v in hours["by_encoder"].values())
    assert total == pytest.approx(study_train_audio_seconds(study)["train_audio_seconds"])

    md = (out / "throughput_cpu_matrix.md").read_text()
    assert md in printed
    row = next(line for line in md.splitlines() if line.startswith("| tiny-wavlm_gc |"))
    assert f"{gc['suite']['audio_s_per_s']:,.1f}" in row and "--grad-checkpointing" in row
    assert "tiny-hubert not measured" in md and "no total yet" in md


@pytest.mark.slow
def test_a_failed_entry_is_named_and_the_next_one_still_runs(tmp_path):
    entries = [Entry("broken", "no-such-preset"), Entry("tiny-wavlm", "tiny-wavlm")]
    outcomes = run_matrix(entries, tmp_path, "cpu", SMALL, study=load_study(EMBEDDED), device="cpu")
    broken, ok = outcomes
    assert broken.status == "failed" and "no-such-preset" in broken.error and broken.error.startswith("exit 2")
    assert broken.result is None and not Path(broken.json).exists()
    assert ok.status == "ok" and ok.result["suite"]["utterances"] == 8
    md = (tmp_path / "throughput_cpu_matrix.md").read_text()
    assert "- broken: failed (exit 2: gemo-bench: error:" in md and "| tiny-wavlm |" in md


def test_the_budget_stops_a_run_and_skips_the_rest(tmp_path):
    entries = [Entry("tiny-wavlm", "tiny-wavlm"), Entry("tiny-hubert", "tiny-hubert")]
    # 2 s: not enough for a child to import torch and train, so it is stopped; the next has nothing left
    outcomes = run_matrix(entries, tmp_path, "cpu", SMALL, budget_seconds=2.0, min_start_seconds=1.0)
    stopped, skipped = outcomes
    assert stopped.status == "timed out" and 1.5 < stopped.seconds < 30
    assert skipped.status == "skipped" and "of the budget left" in skipped.error
    record = json.loads((tmp_path / "throughput_cpu_matrix.json").read_text())
    assert [e["status"] for e in record["entries"]] == ["timed out", "skipped"] and record["budget_seconds"] == 2.0
    assert "No entry has finished." in (tmp_path / "throughput_cpu_matrix.md").read_text()


def test_matrices():
    for matrix in (GPU_MATRIX, CPU_MATRIX):
        names = [e.name for e in matrix]
        assert len(set(names)) == len(names)
        assert all(e.audio_encoder in PRESET_NAMES for e in matrix)
        # the first entry is the plain base preset, with the naive loop (the speed-up)
        assert matrix[0].naive and not matrix[0].options and "--suite-only" not in matrix[0].args()
    assert GPU_MATRIX[0].audio_encoder == "wavlm-base-plus"
    gpu = {e.name: e for e in GPU_MATRIX}
    for preset in LARGE_PRESETS:
        assert gpu[preset].naive and gpu[f"{preset}_gc"].options == ("--grad-checkpointing",)
        assert "--suite-only" in gpu[f"{preset}_gc"].args()
    # every encoder of the paper's table is measured with default options
    paper = {c.audio_encoder for c in load_study(STUDIES / "paper_table.toml").cells()}
    assert paper <= {e.audio_encoder for e in GPU_MATRIX if not e.options}
    embedded = {c.audio_encoder for c in load_study(EMBEDDED).cells()}
    assert embedded <= {e.audio_encoder for e in CPU_MATRIX if not e.options}


def test_select_and_tags():
    assert [e.name for e in select(GPU_MATRIX, ["hubert-large_gc", "wavlm-base-plus"])] == [
        "wavlm-base-plus",
        "hubert-large_gc",
    ]
    assert select(CPU_MATRIX, None) == list(CPU_MATRIX)
    with pytest.raises(ValueError, match=r"no matrix entry 'wavlm-huge'.*entries: wavlm-base-plus, "):
        select(GPU_MATRIX, ["wavlm-huge"])
    assert device_tag("NVIDIA H100 80GB HBM3") == "h100-80gb"
    assert device_tag("NVIDIA H200") == "h200"
    assert device_tag("NVIDIA GeForce RTX 4090") == "rtx-4090"
    assert device_tag("cpu (AMD EPYC, x86_64, 2 threads)") == "cpu"


def test_list_and_bad_budget(capsys):
    assert main(["bench", "throughput-matrix", "--device", "cpu", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [e.name for e in CPU_MATRIX]
    assert "--grad-checkpointing --suite-only" in lines[-1]
    assert main(["bench", "throughput-matrix", "--device", "cpu", "--budget-minutes", "0"]) == 2
    assert "--budget-minutes must be positive" in capsys.readouterr().err


def test_study_hours_use_each_encoders_default_option_speed():
    study = load_study(EMBEDDED)
    speeds = {"tiny-wavlm": 40.0, "tiny-hubert": 20.0, "tiny-wav2vec2": 10.0, "tiny-data2vec": 5.0}
    outcomes = [Outcome(Entry(e, e), status="ok", result={"suite": {"audio_s_per_s": v}}) for e, v in speeds.items()]
    # an option variant, faster, and a failed entry: neither is the encoder's speed
    outcomes += [
        Outcome(
            Entry("tiny-wavlm_gc", "tiny-wavlm", ("--grad-checkpointing",)),
            "ok",
            result={"suite": {"audio_s_per_s": 1e6}},
        ),
        Outcome(Entry("tiny-hubert", "tiny-hubert"), "failed"),
    ]
    hours = study_hours(study, outcomes)
    expected = 0.0
    for enc, speed in speeds.items():
        seconds = study_train_audio_seconds(study, cells=[c for c in study.cells() if c.audio_encoder == enc])
        assert hours["by_encoder"][enc]["hours"] == pytest.approx(seconds["train_audio_seconds"] / speed / 3600)
        expected += seconds["train_audio_seconds"] / speed / 3600
    assert hours["missing"] == [] and hours["hours"] == pytest.approx(expected) and hours["cells"] == 60
    assert (
        study_hours(
            study,
            [Outcome(Entry("wavlm-base-plus", "wavlm-base-plus"), "ok", result={"suite": {"audio_s_per_s": 1.0}})],
        )
        is None
    )
