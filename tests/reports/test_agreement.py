"""Label agreement report on simulated studies with known truth, against a slow per-utterance reference."""

import io

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.reports.agreement import VERDICTS, NoAgreementError, write_agreement_report
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker

UNANIMOUS = {"F": 0.9, "M": 0.5}  # the female speakers' test labels are more often clear-cut
CONFIGS = [
    # 10 points better for female speakers at any agreement level, and worse on split labels
    SimConfig("tiny-wavlm", "emo-clap", skill=0.6, gender_shift={"F": 0.10}, split_penalty=0.3),
    # no gender effect, but worse on split labels: a raw gap the agreement mix makes
    SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.6, split_penalty=0.3),
    # neither
    SimConfig("tiny-wavlm", "ml-gemo-clap", 0.8, skill=0.6),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("agreement")
    tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}", "agree")
    # no speaker or seed noise: the true gaps are exactly the simulated ones
    simulate_study(
        tracker, "agree", CONFIGS, per_speaker=300, speaker_sd=0.0, seed_sd=0.0, seeds=(0, 1), unanimous=UNANIMOUS
    )
    return tracker, root


@pytest.fixture(scope="module")
def report(store):
    tracker, root = store
    return write_agreement_report(tracker, "agree", root / "out", n_boot=400)


def reference(tracker):
    """Every fold run's predictions.csv, read one by one, with the run's variant."""
    frames = []
    for run in tracker.runs("cell"):
        text = tracker.read_artifacts([run], "predictions.csv")[run.run_id].decode()
        f = pd.read_csv(io.StringIO(text), keep_default_na=False)
        f["variant"], f["seed"] = run.params["variant"], int(run.params["seed"])
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    k, n = df["agreement"].str.split("/", expand=True).astype(int).T.to_numpy()
    df["level"] = np.where(k == n, "unanimous", "split")
    df["right"] = df["emotion"] == df["predicted"]
    return df


def test_accuracies_and_gaps_match_a_per_utterance_reference(store, report):
    tracker, _ = store
    df = reference(tracker)
    share = df["level"].value_counts(normalize=True)  # each level's share of all counted predictions
    for variant, rows in df.groupby("variant"):
        row = report.frame.set_index("variant").loc[variant]
        acc = rows.groupby(["gender", "level"])["right"].mean()
        for g in "FM":
            for level in ("unanimous", "split"):
                assert row[f"war_{level}_{g}"] == pytest.approx(acc[g, level], abs=1e-12)
            assert row[f"unanimous_share_{g}"] == pytest.approx((rows[rows.gender == g].level == "unanimous").mean())
        by_gender = rows.groupby("gender")["right"].mean()
        raw = by_gender["F"] - by_gender["M"]
        adjusted = sum(share[lv] * (acc["F", lv] - acc["M", lv]) for lv in ("unanimous", "split"))
        assert row["gap_raw"] == pytest.approx(raw, abs=1e-12)
        assert row["gap_adjusted"] == pytest.approx(adjusted, abs=1e-12)
        assert row["gap_explained"] == pytest.approx(raw - adjusted, abs=1e-12)
        by_level = rows.groupby("level")["right"].mean()
        assert row["ambiguity_cost"] == pytest.approx(by_level["unanimous"] - by_level["split"], abs=1e-12)
        assert row["n"] == len(rows) and row["n_unknown"] == 0
        for name in ("gap_raw", "gap_adjusted", "gap_explained", "ambiguity_cost"):
            assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"]


def test_verdicts_recover_the_simulated_truth(report):
    rows = report.frame.set_index("variant")
    # a true 10-point gap within every level; the agreement mix adds 0.3 x (0.5 - 0.1) = 12 points on top
    # (within 4 points: about three standard errors of these sample sizes)
    emo = rows.loc["emo-clap"]
    assert emo["verdict"] == VERDICTS[1]
    assert emo["gap_adjusted"] == pytest.approx(0.10, abs=0.04) and emo["gap_raw"] == pytest.approx(0.22, abs=0.04)
    assert emo["ambiguity_cost"] == pytest.approx(0.30, abs=0.04)  # 30 points worse on split labels
    # no gap at equal agreement, a 12-point one as measured
    sl = rows.loc["sl-gemo-clap"]
    assert sl["verdict"] == VERDICTS[0] and sl["gap_raw_low"] > 0.05
    assert sl["gap_adjusted_low"] < 0 < sl["gap_adjusted_high"]
    assert sl["gap_explained"] == pytest.approx(0.12, abs=0.04)
    ml = rows.loc["ml-gemo-clap"]
    assert ml["verdict"] == VERDICTS[2] and ml["ambiguity_cost_low"] < 0 < ml["ambiguity_cost_high"]


def test_the_label_table_counts_each_test_utterance_once(store, report):
    tracker, _ = store
    df = reference(tracker)
    first = df[(df["variant"] == "emo-clap") & (df["seed"] == 0)]  # the busiest configuration, first seed
    labels = report.labels
    assert labels["seed"] == 0
    for g in "FM":
        mine = first[first["gender"] == g]
        assert labels["n"][g] == len(mine)
        assert dict(labels["levels"][g]) == mine["agreement"].value_counts().to_dict()
        assert labels["unanimous"][g] == pytest.approx((mine["level"] == "unanimous").mean())
    # 90 % vs 50 % unanimous, drawn: the difference's interval holds the truth
    d = labels["difference"]
    assert d.low < 0.4 < d.high
    md = report.markdown.read_text()
    assert "| F | 1500 |" in md and "Unanimous share, female − male: +" in md
    assert "within agreement levels" in md and "accounted for by agreement" in md


def test_a_study_without_agreement_is_one_error_and_writes_nothing(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "plain")
    simulate_study(tracker, "plain", CONFIGS[:1], per_speaker=20)
    with pytest.raises(NoAgreementError, match=r"study 'plain': none of the test predictions .* label agreement"):
        write_agreement_report(tracker, "plain", tmp_path / "out", n_boot=50)
    assert not (tmp_path / "out").exists()


def test_the_command_and_report_all(store, tmp_path, capsys):
    _, root = store
    study = tmp_path / "agree.toml"
    study.write_text(
        f'name = "agree"\n[encoders]\naudio = ["tiny-wavlm"]\ntext = "tiny-roberta"\n'
        f'[tracking]\nuri = "sqlite:///{root / "mlflow.db"}"\n'
    )
    out = tmp_path / "out"
    assert main(["report", "agreement", str(study), "--out", str(out), "--n-boot", "100"]) == 0
    printed = capsys.readouterr().out
    assert "## The F−M gap at equal label agreement" in printed
    assert {p.name for p in (out / "agree").iterdir()} >= {"agreement.md", "agreement.csv", "agreement.png"}
    assert "Label agreement" in (out / "agree" / "index.html").read_text()
    assert main(["report", "all", str(study), "--out", str(tmp_path / "all"), "--n-boot", "50"]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "all" / "agree" / "agreement.md") in printed and "agreement: skipped" not in printed
