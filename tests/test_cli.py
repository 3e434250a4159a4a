"""The command line, run in-process through its real parser."""

import json

import pytest

from benchmark.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_names_the_package_version_and_the_commit(capsys):
    import subprocess

    from benchmark import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    assert out.startswith(f"gemo-bench {__version__} (commit ")
    assert (head or "unknown") in out


def test_help_shows_a_first_run_on_the_embedded_study(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "studies/paper_table_embedded.toml" in out and "report table" in out


def test_data_summary_json_shape(capsys, small_corpus, small_records):
    code, out, _ = run(capsys, "data", "summary", "--iemocap", str(small_corpus), "--json")
    assert code == 0
    summary = json.loads(out)
    assert list(summary) == ["total", "by_emotion", "by_session", "by_gender", "by_speaker", "dropped"]
    assert summary["total"] == len(small_records)
    assert summary["by_speaker"] == {s: sum(r.speaker == s for r in small_records) for s in summary["by_speaker"]}
    assert sum(summary["by_speaker"].values()) == summary["total"]
    # the generated tree labels some utterances outside the 4 classes; they are counted, by label
    assert summary["dropped"] and all(reason.startswith("label ") for reason in summary["dropped"])
    assert summary["by_gender"] == {g: sum(r.gender == g for r in small_records) for g in "FM"}
    assert list(summary["by_session"]) == ["1", "2", "3", "4", "5"]
    assert sum(summary["by_emotion"].values()) == summary["total"]


def test_data_summary_of_a_named_corpus_has_the_shared_shape(capsys, small_corpus, small_records):
    code, out, _ = run(capsys, "data", "summary", "--corpus", "iemocap", "--root", str(small_corpus), "--json")
    assert code == 0
    summary = json.loads(out)
    assert list(summary) == ["total", "by_emotion", "by_gender", "by_speaker", "dropped"]
    assert summary["total"] == len(small_records)


def test_data_summary_honours_iemocap_root_env(capsys, monkeypatch, small_corpus):
    monkeypatch.setenv("IEMOCAP_ROOT", str(small_corpus))
    code, out, _ = run(capsys, "data", "summary", "--json")
    assert code == 0 and json.loads(out)["total"] > 0


def test_bad_root_is_one_clear_error(capsys, tmp_path):
    code, out, err = run(capsys, "data", "summary", "--iemocap", str(tmp_path), "--json")
    assert code == 2 and out == ""
    assert str(tmp_path) in err and "EmoEvaluation" in err


def test_synth_writes_a_readable_tree(capsys, tmp_path):
    code, out, _ = run(capsys, "synth", str(tmp_path / "tree"), "--size", "60", "--seed", "3")
    assert code == 0 and out.strip() == str(tmp_path / "tree")
    code, out, _ = run(capsys, "data", "summary", "--iemocap", str(tmp_path / "tree"), "--json")
    assert json.loads(out)["total"] == 60


def test_alpha_outside_unit_interval_is_rejected(capsys, small_corpus):
    with pytest.raises(SystemExit):
        main(["train-cell", "--iemocap", str(small_corpus), "--fold", "1", "--alpha", "1.5"])
    assert "alpha must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("run s.toml --workers 0", "argument --workers: must be >= 1, got 0"),
        ("check s.toml --workers -2", "argument --workers: must be >= 1, got -2"),
        ("search s.toml --workers 0", "argument --workers: must be >= 1, got 0"),
        ("search s.toml --trials 0", "argument --trials: must be >= 1, got 0"),
        ("search-cost s.toml --repeats 0", "argument --repeats: must be >= 1, got 0"),
        ("report bias s.toml --n-boot 0", "argument --n-boot: must be >= 1, got 0"),
        ("bench throughput --utterances 0", "argument --utterances: must be >= 1, got 0"),
        ("bench throughput --warmup -1", "argument --warmup: must be >= 0, got -1"),
        ("bench throughput-matrix --utterances 0", "argument --utterances: must be >= 1, got 0"),
        ("predict model a.wav --batch-size 0", "argument --batch-size: must be >= 1, got 0"),
        ("run s.toml --workers two", "argument --workers: expected an integer, got 'two'"),
    ],
)
def test_a_count_below_its_minimum_is_refused_by_the_parser(capsys, argv, message):
    # before any study, store or model is read: the study file and the model need not exist
    with pytest.raises(SystemExit) as stop:
        main(argv.split())
    assert stop.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(message)


def test_unknown_encoder_is_one_clear_error(capsys, small_corpus):
    code, _, err = run(capsys, "train-cell", "--iemocap", str(small_corpus), "--fold", "1", "--audio-encoder", "nope")
    assert code == 2 and "unknown audio encoder 'nope'" in err


@pytest.mark.slow
def test_train_cell_json(capsys, small_corpus):
    code, out, _ = run(
        capsys,
        "train-cell",
        "--iemocap",
        str(small_corpus),
        "--audio-encoder",
        "tiny-hubert",
        "--text-encoder",
        "tiny-roberta",
        "--variant",
        "ml-gemo-clap",
        "--alpha",
        "0.7",
        "--fold",
        "3",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-seconds",
        "1.5",
        "--proj-dim",
        "32",
        "--no-progress",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    for key in ("war", "uar", "by_gender", "confusion"):
        assert key in result
    assert set(result["by_gender"]) == {"F", "M"} and set(result["by_gender"]["F"]) == {"war", "uar"}
    assert len(result["confusion"]) == 4 and all(len(row) == 4 for row in result["confusion"])
    assert result["spec"]["alpha"] == 0.7 and result["spec"]["train"]["lr"] == 3e-3
    assert result["data"]["kind"] == "embedded"
    assert result["weights"]["audio"] == "random-init (tiny-hubert)"


def test_speed_options_reach_the_cell_spec():
    from benchmark.cli import build_parser, cell_spec_from_args

    args = build_parser().parse_args(
        [
            "train-cell",
            "--fold",
            "1",
            "--batch-seconds",
            "90",
            "--attention",
            "sdpa",
            "--compile",
            "--no-grad-checkpointing",
            "--no-deterministic",
        ]
    )
    train = cell_spec_from_args(args, "embedded").train
    assert (train.batch_seconds, train.attention, train.compile, train.grad_checkpointing, train.deterministic) == (
        90.0,
        "sdpa",
        True,
        False,
        False,
    )
    defaults = cell_spec_from_args(build_parser().parse_args(["train-cell", "--fold", "1"]), "embedded").train
    assert (defaults.batch_seconds, defaults.attention, defaults.compile) == (0.0, "auto", False)
    assert defaults.deterministic
