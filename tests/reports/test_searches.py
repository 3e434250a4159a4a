"""The search report: trials read back from a real Optuna journal, every figure against a slow reference."""

import json
import math
import subprocess
import sys

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from benchmark.cli import main
from benchmark.reports.searches import NoSearchError, write_search_report
from benchmark.search_store import open_storage, search_id, storage_url, targets
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri

STUDY = """
name = "srep"
[data]
corpus = "embedded"
size = 100
[encoders]
audio = ["tiny-wavlm"]
text = "tiny-roberta"
[method]
variants = ["emo-clap", "sl-gemo-clap"]
[search]
trials = {trials}
alpha = [0.0, 1.0]
temperature = [0.03, 0.5]
lr = [1e-3, 1e-2]
[tracking]
uri = "sqlite:///{root}/mlflow.db"
"""

DISTS = {
    "alpha": FloatDistribution(0.0, 1.0),
    "temperature": FloatDistribution(0.03, 0.5, log=True),
    "lr": FloatDistribution(1e-3, 1e-2, log=True),
}
FULL = 6  # fold x epoch steps of a whole trial

# SL-GEmo-CLAP: (state, alpha, temperature, lr, value or the last running value, steps trained)
SL = [
    ("COMPLETE", 0.10, 0.20, 0.002, 0.400, FULL),
    ("COMPLETE", 0.30, 0.10, 0.003, 0.450, FULL),
    ("PRUNED", 0.20, 0.40, 0.009, 0.300, 2),
    ("COMPLETE", 0.50, 0.05, 0.004, 0.520, FULL),
    ("FAIL", 0.60, 0.07, 0.005, None, 1),  # retried below as the next trial
    ("COMPLETE", 0.60, 0.07, 0.005, 0.560, FULL),
    ("PRUNED", 0.05, 0.30, 0.008, 0.280, 3),
    ("COMPLETE", 0.70, 0.031, 0.004, 0.603, FULL),  # temperature near (not at) the low end of its range
    ("COMPLETE", 0.80, 0.09, 0.006, 0.595, FULL),
    ("COMPLETE", 0.90, 0.12, 0.002, 0.605, FULL),
    ("COMPLETE", 0.99, 0.15, 0.007, 0.610, FULL),  # the best: alpha at its natural end 1
    ("COMPLETE", 0.40, 0.25, 0.003, 0.500, FULL),
]
# Emo-CLAP searches no alpha
EMO = [
    ("COMPLETE", None, 0.10, 0.004, 0.500, FULL),
    ("COMPLETE", None, 0.20, 0.002, 0.540, FULL),
    ("PRUNED", None, 0.40, 0.009, 0.300, 2),
]


def add_trials(ostudy, rows):
    numbers = []
    for state, alpha, temperature, lr, value, steps in rows:
        params = {"temperature": temperature, "lr": lr}
        dists = {k: DISTS[k] for k in params}
        if alpha is not None:
            params, dists = {"alpha": alpha, **params}, {"alpha": DISTS["alpha"], **dists}
        st = TrialState[state]
        inter = {s: (value or 0.2) * s / steps for s in range(1, steps + 1)}
        system = {}
        if state == "COMPLETE" and numbers and rows[len(numbers) - 1][0] == "FAIL":
            system = {"failed_trial": numbers[-1], "retry_history": [numbers[-1]]}
        trial = create_trial(
            state=st,
            params=params,
            distributions=dists,
            value=value if st == TrialState.COMPLETE else None,
            intermediate_values=inter,
            system_attrs=system,
        )
        ostudy.add_trial(trial)
        numbers.append(ostudy.trials[-1].number)


@pytest.fixture
def searched(tmp_path):
    """A study with both searches in its real journal storage, and a running trial in the SL one."""
    path = tmp_path / "srep.toml"
    path.write_text(STUDY.format(trials=12, root=tmp_path))
    study = load_study(path)
    url = storage_url(study)
    storage = open_storage(study.search, url)
    emo, sl = targets(study)
    add_trials(optuna.create_study(storage=storage, study_name=emo.study_name, direction="maximize"), EMO)
    sl_study = optuna.create_study(storage=storage, study_name=sl.study_name, direction="maximize")
    add_trials(sl_study, SL)
    return path, study, url, emo, sl


def reference(rows):
    """The figures of one search, by hand."""
    replaced = {i - 1 for i, r in enumerate(rows) if i and rows[i - 1][0] == "FAIL" and r[0] == "COMPLETE"}
    finished = [
        i for i, r in enumerate(rows) if r[0] in ("COMPLETE", "PRUNED") or (r[0] == "FAIL" and i not in replaced)
    ]
    complete = [i for i, r in enumerate(rows) if r[0] == "COMPLETE"]
    best = max(complete, key=lambda i: (rows[i][4], -i))
    near = [i for i in complete if rows[i][4] >= rows[best][4] - 0.01]
    skipped = sum(FULL - rows[i][5] for i in finished if rows[i][0] == "PRUNED") / (len(finished) * FULL)
    return {
        "done": len(finished),
        "complete": len(complete),
        "pruned": sum(r[0] == "PRUNED" for r in rows),
        "failed": len(finished) - len(complete) - sum(r[0] == "PRUNED" for r in rows),
        "best": best,
        "found_at": finished.index(best) + 1,
        "near": near,
        "skipped": skipped,
    }


def test_every_figure_of_a_search_against_a_slow_reference(searched, tmp_path):
    _, study, url, _, sl = searched
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    # the best configuration's test figures come from its search-best run; one of an older best is ignored
    sid = search_id(url, sl)
    parent = tracker.open_search(sid, "search", {}, {})
    for trial, uar in ((7, 0.11), (10, 0.58)):
        run = tracker.start_child("search-best", parent, f"best {trial}", {"trial": trial}, {"gemo.search_id": sid})
        tracker.log_metrics(
            run, {"war_mean": uar + 0.02, "war_std": 0.01, "uar_mean": uar, "uar_std": 0.03, "folds": 5}
        )
        tracker.end(run, "FINISHED")

    report = write_search_report(tracker, study, tmp_path / "out")
    summary = report.summary.set_index("variant")
    r, ref = summary.loc["sl-gemo-clap"], reference(SL)
    for key in ("done", "complete", "pruned", "failed", "found_at"):
        assert r[key] == ref[key], key
    assert r["budget"] == 12 and r["running"] == 0 and r["failed"] == 0  # the failure was retried
    assert r["best_trial"] == ref["best"] and r["best_value"] == pytest.approx(SL[ref["best"]][4])
    assert (r["best_alpha"], r["best_temperature"], r["best_lr"]) == pytest.approx(SL[ref["best"]][1:4])
    assert r["near_trials"] == len(ref["near"])
    for k, p in enumerate(("alpha", "temperature", "lr"), start=1):
        assert r[f"near_{p}_min"] == pytest.approx(min(SL[i][k] for i in ref["near"]))
        assert r[f"near_{p}_max"] == pytest.approx(max(SL[i][k] for i in ref["near"]))
    assert r["steps_skipped"] == pytest.approx(ref["skipped"])
    assert (r["edge_alpha"], r["edge_temperature"], r["edge_lr"]) == ("high", "", "")
    assert (r["test_uar_mean"], r["test_war_mean"], r["test_folds"]) == pytest.approx((0.58, 0.60, 5))
    # fANOVA on the complete trials, as Optuna computes it from the stored study
    loaded = optuna.load_study(study_name=sl.study_name, storage=open_storage(study.search, url))
    expected = optuna.importance.get_param_importances(
        loaded, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    for p in ("alpha", "temperature", "lr"):
        assert r[f"importance_{p}"] == pytest.approx(expected[p])
    assert r["importance_alpha"] == max(r[f"importance_{p}"] for p in ("alpha", "temperature", "lr"))

    e, ref = summary.loc["emo-clap"], reference(EMO)
    assert (e["done"], e["complete"], e["pruned"], e["best_trial"]) == (3, 2, 1, 1)
    assert e["best_value"] == pytest.approx(0.54) and math.isnan(e["best_alpha"]) and e["searched"] == "temperature lr"
    assert math.isnan(e["importance_temperature"])  # too few complete trials
    assert math.isnan(e["test_uar_mean"])  # its best was never tested

    # the trial table: every trial once, pruned ones at the step they stopped
    trials = pd.read_csv(report.folder / "search_trials.csv")
    sl_trials = trials[trials["variant"] == "sl-gemo-clap"].sort_values("number")
    assert list(sl_trials["state"]) == [row[0] for row in SL]
    assert list(sl_trials["steps"]) == [row[5] for row in SL]
    assert list(sl_trials["retried"]) == [i == 4 for i in range(len(SL))]
    pruned = sl_trials[sl_trials["state"] == "PRUNED"]
    assert list(pruned["last_intermediate"]) == pytest.approx([SL[i][4] for i in pruned["number"]])

    text = report.markdown.read_text()
    assert "**tiny-wavlm SL-GEmo-CLAP**: the best α = 0.99 lies at the end 1 of its range (Emo-CLAP's weighting" in text
    assert "the best trial came 10 of 11 finished trials in: the search may still be improving" in text
    # alpha from 0.7 to 0.99 is within a point of the best: less than half of [0, 1], so not flat
    assert "flat in α" not in text
    assert "largely luck" not in text  # 3 points below the objective; trial 7's old figures would be 50
    assert "| SL-GEmo-CLAP | 11 of 12 (9/2/0) | 10 | 61.00 | 0.99 | 0.15 | 0.007 | 10 of 11 |" in text
    assert "| 60.00 ± 1.00 | 58.00 ± 3.00 | +3.00 |" in text
    assert "| tiny-wavlm | SL-GEmo-CLAP | 61.00 | 54.00 | +7.00 | 58.00 | – | – |" in text
    assert '<section id="search">' in report.page.read_text()
    assert report.figures[0].stat().st_size > 10_000
    assert "no trial runs in the MLflow store" in text  # these trials were not run: the header says so


def test_what_the_notes_say_of_edges_flat_objectives_and_unfinished_searches(tmp_path):
    path = tmp_path / "srep.toml"
    path.write_text(STUDY.format(trials=10, root=tmp_path).replace('"emo-clap", ', ""))
    study = load_study(path)
    storage = open_storage(study.search, storage_url(study))
    (sl,) = targets(study)
    ostudy = optuna.create_study(storage=storage, study_name=sl.study_name, direction="maximize")
    # flat in alpha over most of [0, 1]; the best temperature at the low end 0.03 of its range
    rows = [
        ("COMPLETE", a, 0.0305 if a == 0.5 else 0.2, 0.003, 0.6 - abs(a - 0.5) / 100, FULL) for a in (0.1, 0.5, 0.9)
    ]
    add_trials(ostudy, rows)
    running = {"alpha": 0.3, "temperature": 0.1, "lr": 0.003}
    ostudy.add_trial(create_trial(state=TrialState.RUNNING, params=running, distributions=DISTS))

    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    sid = search_id(storage_url(study), sl)
    best = tracker.start_child(
        "search-best", tracker.open_search(sid, "s", {}, {}), "b", {"trial": 1}, {"gemo.search_id": sid}
    )
    tracker.log_metrics(best, {"war_mean": 0.45, "war_std": 0.0, "uar_mean": 0.42, "uar_std": 0.0, "folds": 1})
    tracker.end(best, "FINISHED")
    report = write_search_report(tracker, study, tmp_path)
    notes = " ".join(report.notes)
    assert (
        "test UAR is 18.0 points below its objective: the best of 3 trials on the validation folds was largely "
        in notes
    )
    assert "3 of 10 trials finished, 1 running; the figures are provisional" in notes
    assert "the best T = 0.0305 lies at the low end of its range [0.03, 0.5]: the optimum may lie outside it; " in notes
    assert "widen `search.temperature`" in notes
    assert "flat in α: 3 complete trials with α from 0.1 to 0.9 are within 1 point of the best" in notes
    assert "may still be improving" not in notes  # fewer than 8 trials: too early to say


def test_a_search_that_never_began_is_one_error_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "srep.toml"
    path.write_text(STUDY.format(trials=3, root=tmp_path))
    study = load_study(path)
    with pytest.raises(NoSearchError, match="no search has begun"):
        write_search_report(Tracker(resolve_uri(study.tracking.uri), study.experiment_name), study, tmp_path / "out")
    assert main(["report", "search", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "srep" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / ".gemo" / "optuna").exists()


def test_the_report_command_loads_no_model_library(searched, tmp_path):
    path = searched[0]
    child = (
        "import json, sys\nfrom benchmark.cli import main\ncode = main(sys.argv[1:])\n"
        'heavy = sorted(m for m in ("torch", "transformers", "submitit") if m in sys.modules)\n'
        'print("@@" + json.dumps({"code": code, "heavy": heavy}))\n'
    )
    args = ["report", "search", str(path), "--out", str(tmp_path / "cli")]
    proc = subprocess.run([sys.executable, "-c", child, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.rsplit("@@", 1)[1]) == {"code": 0, "heavy": []}
    assert (tmp_path / "cli" / "srep" / "search.csv").is_file()


def test_the_front_of_uar_and_gender_gap_in_a_search_of_uar_alone(tmp_path):
    path = tmp_path / "srep.toml"
    path.write_text(STUDY.format(trials=6, root=tmp_path))
    study = load_study(path, ["method.variants=['sl-gemo-clap']"])
    url = storage_url(study)
    (sl,) = targets(study)
    ostudy = optuna.create_study(storage=open_storage(study.search, url), study_name=sl.study_name)
    # (UAR, gap): trial 2 dominates 0; 1 and 4 have the best UAR, 4 the smaller gap; 5 is at chance
    points = [(0.40, 0.08), (0.55, 0.12), (0.45, 0.05), (0.30, 0.01), (0.55, 0.09), (0.25, 0.0)]
    for i, (uar, gap) in enumerate(points):
        params = {"alpha": 0.1 * (i + 1), "temperature": 0.1, "lr": 0.002}
        ostudy.add_trial(
            create_trial(params=params, distributions=DISTS, value=uar, user_attrs={"val_gender_gap": gap})
        )
    ostudy.add_trial(create_trial(state=TrialState.PRUNED, params=params, distributions=DISTS))
    # the slow reference: no other complete trial above chance at least as good in both and better in one
    above = [i for i, (u, _) in enumerate(points) if u > 0.25]
    expected = [
        i
        for i in above
        if not any(
            points[j][0] >= points[i][0]
            and points[j][1] <= points[i][1]
            and (points[j][0] > points[i][0] or points[j][1] < points[i][1])
            for j in above
        )
    ]
    assert sorted(expected) == [2, 3, 4]

    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    sid = search_id(url, sl)
    parent = tracker.open_search(sid, "search", {}, {})
    run = tracker.start_child("search-best", parent, "best: trial 4", {"trial": 4}, {"gemo.search_id": sid})
    tested = {"uar_mean": 0.5, "uar_std": 0.02, "uar_F_mean": 0.47, "uar_M_mean": 0.52, "folds": 5}
    tracker.log_metrics(run, tested)
    tracker.end(run, "FINISHED")

    report = write_search_report(tracker, study, tmp_path / "out")
    front = report.front.set_index("number")
    assert list(front.index) == [4, 2, 3]  # by UAR, highest first
    for i in expected:
        assert (front.loc[i, "value"], front.loc[i, "gap"]) == pytest.approx(points[i])
    assert (front["objectives"] == "uar").all()
    assert (
        front.loc[4, "test_uar_mean"] == pytest.approx(0.5) and front[["test_uar_mean"]].loc[[2, 3]].isna().all().all()
    )
    (row,) = report.summary.to_dict("records")
    assert (row["best_trial"], row["best_gap"], row["objectives"]) == (4, pytest.approx(0.09), "uar")
    assert pd.read_csv(report.folder / "search_front.csv")["number"].tolist() == [4, 2, 3]
    assert report.figures[1].name == "search_front.png" and report.figures[1].stat().st_size > 10_000
    text = report.markdown.read_text()
    assert "## Validation UAR and the gender gap" in text
    assert "| tiny-wavlm | SL-GEmo-CLAP | uar | 4 | 55.00 | 9.00 | 0.50 | 0.1 | 0.002 | 50.00 ± 2.00 | -5.00 |" in text
    assert "| tiny-wavlm | SL-GEmo-CLAP | uar | 3 | 30.00 | 1.00 | 0.40 | 0.1 | 0.002 | – | – |" in text


def test_a_search_from_before_the_gender_gap_has_no_front(searched, tmp_path):
    _, study, *_ = searched
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    report = write_search_report(tracker, study, tmp_path / "out")
    assert report.front is None and len(report.figures) == 1
    assert not (report.folder / "search_front.csv").exists()
    assert "gender gap" not in report.markdown.read_text()
