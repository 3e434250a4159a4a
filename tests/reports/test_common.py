"""Reading runs and predictions for reports: configurations, bad artifacts, empty studies, the CLI."""

import pytest

from benchmark.cli import main
from benchmark.reports.common import NoRunsError, load_cells, load_predictions
from benchmark.tracking import Tracker

GOOD = "id,speaker,gender,emotion,predicted\nu1,S1,F,neu,hap\nu2,S1,F,sad,sad\n\nu3,S2,M,ang,ang\n"


def logged(tmp_path, *texts):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "p")
    parent = tracker.parent("c", "c", {}, {})
    for i, text in enumerate(texts):
        run_id = tracker.start_cell(
            parent,
            f"r{i}",
            {"audio_encoder": "tiny-wavlm", "variant": "emo-clap", "alpha": 1.0, "fold": i + 1, "seed": 0},
            {},
        )
        folder = tmp_path / f"a{i}"
        folder.mkdir()
        (folder / "predictions.csv").write_text(text)
        tracker.log_artifacts(run_id, folder)
        tracker.log_metrics(run_id, {"test_war": 0.5, "test_uar": 0.5})
        tracker.end(run_id)
    return tracker


def test_predictions_are_read_as_codes_with_blank_lines_skipped(tmp_path):
    tracker = logged(tmp_path, GOOD, GOOD.replace("S1", "S3").replace("S2", "S4"))
    preds = load_predictions(tracker, tracker.runs("cell"))
    assert len(preds.y_true) == 6 and preds.missing == ()
    assert sorted(preds.speakers) == ["S1", "S2", "S3", "S4"]
    genders = dict(zip(preds.speakers, preds.speaker_gender, strict=True))
    assert genders == {"S1": "F", "S2": "M", "S3": "F", "S4": "M"}
    # u1: neu -> hap; classes in CLASSES order (neu, hap, ang, sad)
    first = [i for i in range(6) if preds.speakers[preds.speaker[i]] in ("S1", "S3")]
    assert sorted(zip(preds.y_true[first], preds.y_pred[first], strict=True)) == [(0, 1), (0, 1), (3, 3), (3, 3)]


def test_agreement_is_read_where_logged_and_unknown_in_older_files(tmp_path):
    new = "id,speaker,gender,emotion,predicted,agreement\r\nu1,S5,F,neu,hap,2/3\r\nu2,S5,F,sad,sad,\r\nu3,S6,M,ang,ang,4/4"
    old = GOOD.replace("\n", "\r\n")  # a file from before the column, with Windows line ends
    tracker = logged(tmp_path, old, new)
    preds = load_predictions(tracker, tracker.runs("cell"))
    rows = {
        (preds.speakers[s], int(t)): (int(k), int(n))
        for s, t, k, n in zip(preds.speaker, preds.y_true, preds.agreeing, preds.evaluators, strict=True)
    }
    assert rows[("S5", 0)] == (2, 3) and rows[("S5", 3)] == (0, 0) and rows[("S6", 2)] == (4, 4)
    assert rows[("S1", 0)] == rows[("S1", 3)] == rows[("S2", 2)] == (0, 0)
    assert len(preds.y_true) == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,speaker,gender,emotion\nu1,S1,F,neu\n", "expected columns id,speaker,gender,emotion,predicted"),
        (
            "id,speaker,gender,emotion,predicted,agreement\nu1,S1,F,neu,neu,3/3\nu2,S1,F,sad,sad,3/2\n",
            "line 3: bad agreement '3/2' (expected k/n)",
        ),
        (GOOD.replace("u3,S2,M,ang,ang", "u3,S2,M,fru,ang"), "line 5: unknown class 'fru'"),
        (GOOD.replace("u2,S1,F,sad,sad", "u2,S1,X,sad,sad"), "line 3: unknown gender 'X'"),
        (GOOD.replace("u2,S1,F,sad,sad", "u2,S1,M,sad,sad"), "line 3: speaker 'S1' is M here but elsewhere not"),
    ],
)
def test_a_bad_predictions_file_is_one_error_naming_run_file_and_line(tmp_path, text, message):
    tracker = logged(tmp_path, GOOD, text)
    bad = next(r for r in tracker.runs("cell") if r.params["fold"] == "2")
    with pytest.raises(ValueError, match=f"run {bad.run_id}: predictions.csv") as err:
        load_predictions(tracker, tracker.runs("cell"))
    assert message in str(err.value)


def test_an_empty_study_says_what_to_run(tmp_path, capsys):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "empty")
    with pytest.raises(NoRunsError, match=r"no finished runs .* run `gemo-bench run STUDY` first"):
        load_cells(tracker, "empty")
    study = tmp_path / "empty.toml"
    study.write_text(
        f'name = "empty"\n[encoders]\naudio = ["tiny-wavlm"]\ntext = "tiny-roberta"\n'
        f'[tracking]\nuri = "sqlite:///{tmp_path / "mlflow.db"}"\n'
    )
    for kind in ("ablation", "bias"):
        capsys.readouterr()
        assert main(["report", kind, str(study), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "study 'empty': no finished runs" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_report_of_a_study_never_run_creates_no_store(tmp_path, capsys):
    db = tmp_path / "elsewhere" / "mlflow.db"
    db.parent.mkdir()
    study = tmp_path / "never.toml"
    study.write_text(
        f'name = "never"\n[encoders]\naudio = ["tiny-wavlm"]\ntext = "tiny-roberta"\n[tracking]\nuri = "sqlite:///{db}"\n'
    )
    for kind in ("table", "bias", "claims"):
        capsys.readouterr()
        assert main(["report", kind, str(study), "--out", str(tmp_path / "out")]) == 2
        (err,) = capsys.readouterr().err.strip().splitlines()
        assert err == (
            f"gemo-bench: error: study 'never': no finished runs: there is no MLflow store at sqlite:///{db} "
            "(tracking.uri, else MLFLOW_TRACKING_URI, else mlflow.db in the working directory); "
            "run `gemo-bench run STUDY` first"
        )
    assert not db.exists() and not (tmp_path / "out").exists()
    assert sorted(p.name for p in db.parent.iterdir()) == []  # no lock file or state folder either

    Tracker(f"sqlite:///{db}", "another")  # a store that holds other studies only
    assert main(["report", "table", str(study), "--out", str(tmp_path / "out")]) == 2
    assert f"sqlite:///{db} has no experiment 'never'; run" in capsys.readouterr().err
    assert Tracker.existing(f"sqlite:///{db}", "never") is None  # it was not created


def test_ablation_and_bias_commands_write_their_reports(sim_store, tmp_path, capsys):
    uri, _, _ = sim_store
    study = tmp_path / "sim.toml"
    study.write_text(
        f'name = "sim"\n[encoders]\naudio = ["tiny-wavlm"]\ntext = "tiny-roberta"\n[tracking]\nuri = "{uri}"\n'
    )
    for kind, md in (("ablation", "ablation.md"), ("bias", "bias.md")):
        capsys.readouterr()
        assert main(["report", kind, str(study), "--out", str(tmp_path / "out"), "--n-boot", "200"]) == 0
        out = capsys.readouterr().out
        assert f"wrote {tmp_path / 'out' / 'sim' / md}" in out and "page: " in out
    page = (tmp_path / "out" / "sim" / "index.html").read_text()
    assert 'id="ablation"' in page and 'id="bias"' in page
