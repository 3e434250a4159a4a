"""Searches for real: Optuna journal storage, MLflow SQLite stores, worker processes, SIGKILL, Ctrl-C, SIGTERM."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

import benchmark.train as train_module
from benchmark.search import (
    INTERRUPTED_ATTR,
    SearchError,
    count_trials,
    fail_stale,
    open_storage,
    retry_callback,
    run_search,
    storage_url,
    targets,
)
from benchmark.search_store import nothing_to_search, search_progress, trial_budget
from benchmark.status import render, study_status
from benchmark.studies import SearchSpec, StudyError, load_study
from benchmark.tracking import Tracker, resolve_uri

REPO = Path(__file__).resolve().parents[1]
STUDY = """
name = "searchmini"
[data]
corpus = "embedded"
size = 100
[encoders]
audio = ["tiny-wavlm"]
text = "tiny-roberta"
[method]
variants = ["sl-gemo-clap"]
[model]
proj_dim = 16
[train]
epochs = {epochs}
batch_size = 16
max_seconds = 1.0
freeze_encoders = "audio"
[protocol]
folds = [1]
[search]
trials = {trials}
temperature = [0.05, 0.5]
lr = [1e-3, 1e-2]
folds = [2, 3]
pruner = "{pruner}"
startup_trials = 2
warmup_epochs = 1
heartbeat_s = 1
grace_s = 4
[tracking]
uri = "{uri}"
"""


def make_study(tmp_path, trials=3, epochs=2, pruner="none"):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "searchmini.toml"
    path.write_text(STUDY.format(trials=trials, epochs=epochs, pruner=pruner, uri=uri))
    return path


def optuna_trials(study):
    storage = open_storage(study.search, storage_url(study))
    (target,) = targets(study)
    return optuna.load_study(study_name=target.study_name, storage=storage).get_trials(deepcopy=False)


def tracker_of(study):
    return Tracker(resolve_uri(study.tracking.uri), study.experiment_name)


def _as_a_terminal_starts_it() -> None:
    # A command started in the background by a shell without job control (`cmd &` in a script, nohup) has
    # Ctrl-C ignored, and a child inherits that: Python then installs no KeyboardInterrupt handler at all.
    # A command typed at a terminal has the default disposition; give the child that, whatever ran pytest.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args, cwd):
    # a session of its own: the test can signal the command and its workers together, like a terminal
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_as_a_terminal_starts_it,
    )


def wait_for_running_trial(tracker, proc, timeout=300):
    """A trial run that is mid-training (it logged an epoch), while ``proc`` is alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in tracker.runs("trial", "RUNNING"):
            if tracker.client.get_metric_history(run.run_id, "intermediate"):
                return run
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no trial reached its first epoch in time")


def assert_exactly_once(study, trials):
    """``trials`` trials finished, each once; nothing running or waiting; one MLflow run per trial."""
    ot = optuna_trials(study)
    counts = count_trials(ot)
    assert counts.done == trials and counts.running == 0 and counts.waiting == 0, counts
    finished = [t for t in ot if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == trials
    assert len({t.number for t in finished}) == trials
    # no two finished trials evaluated the same point (identically seeded workers would)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == trials
    tracker = tracker_of(study)
    assert not tracker.runs("trial", "RUNNING")
    runs = tracker.runs("trial", "FINISHED")
    by_number = Counter(int(r.tags["gemo.trial_number"]) for r in runs)
    assert by_number == Counter({t.number: 1 for t in finished}), by_number
    for t in finished:
        assert t.user_attrs["mlflow_run_id"] in {r.run_id for r in runs}
    return ot


# ---- spec ---------------------------------------------------------------------------------------------------


def test_search_table_is_validated_with_file_and_key(tmp_path):
    path = make_study(tmp_path)
    study = load_study(path)
    assert study.search.space() == {"alpha": (0.0, 1.0), "temperature": (0.05, 0.5), "lr": (1e-3, 1e-2)}
    assert load_study(path, ["search.alpha=0.8"]).search.space()["alpha"] == 0.8
    assert load_study(path, ["search.alpha=[0.9, 0.9]"]).search.space()["alpha"] == 0.9
    bad = {
        "search.alpha=[0.5, 1.5]": r"search\.alpha: alpha must be \[0, 1\], got 1.5",
        "search.temperature=[0.5, 0.05]": r"search\.temperature: temperature must be a number or a range",
        "search.lr=[0, 0.1]": r"search\.lr: lr must be positive, got 0",
        "search.pruner=sometimes": r"search\.pruner: pruner must be one of median, hyperband, none",
        "search.trials=0": r"search\.trials: trials must be >= 1",
        "search.grace_s=1": r"search\.grace_s: grace_s must be at least twice the heartbeat interval",
        "search.folds=[2, 7]": r"search\.folds: distinct sessions in 1\.\.5",
        "search.temperature=[0.001, 0.5]": r"search\.temperature: 0\.001 gives a logit scale above",
        "search.sampler='grid'": r"search\.sampler",
        "search.objectives=['gap']": r'search\.objectives: objectives must be \["uar"\] or \["uar", "gender_gap"\]',
        "search.storage=5": r"search\.storage: expected a string",
        "search.trails=3": r"search\.trails: unknown key",
        "executor.kind=cloud": r"executor\.kind: kind must be one of local, slurm, submitit-local",
        "executor.gpus_per_task=-1": r"executor\.gpus_per_task",
        "executor.queue=x": r"executor\.queue: unknown key",
        "train.freeze_encoders=true": r"train\.freeze_encoders: expected a string",
        "train.freeze_encoders=text": r"train\.freeze_encoders: freeze_encoders must be one of none, audio, all",
    }
    for override, message in bad.items():
        with pytest.raises(StudyError, match=message) as err:
            load_study(path, [override])
        assert str(path) in str(err.value), override


def test_a_multi_objective_search_needs_no_pruner_and_keeps_the_default_one_otherwise(tmp_path):
    path = make_study(tmp_path, pruner="median")
    assert load_study(path).search.pruner == "median" and not load_study(path).search.multi_objective
    both = load_study(path, ["search.objectives=['uar', 'gender_gap']", "search.pruner=none"]).search
    assert both.multi_objective and both.objectives == ("uar", "gender_gap")
    assert SearchSpec(objectives=["uar", "gender_gap"]).pruner == "none" and SearchSpec().pruner == "median"
    with pytest.raises(StudyError, match=r'search\.pruner: pruner must be "none" when the gender gap') as err:
        load_study(path, ["search.objectives=['uar', 'gender_gap']"])  # the file asks for the median pruner
    assert str(path) in str(err.value)


def test_pareto_front_is_optunas_front_of_uar_and_gap():
    import random

    from benchmark.search_store import best_trial, pareto_front

    rng = random.Random(3)
    for _ in range(20):
        study = optuna.create_study(directions=["maximize", "minimize"])
        for _ in range(rng.randint(1, 25)):
            # coarse values, so that ties and duplicated points occur
            study.add_trial(
                optuna.trial.create_trial(
                    params={"alpha": rng.random()},
                    distributions={"alpha": FloatDistribution(0, 1)},
                    values=[rng.randint(0, 6) / 10, rng.randint(0, 6) / 20],
                )
            )
        study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
        trials = study.get_trials()
        front = pareto_front(trials)
        # Optuna's front of the trials above chance (UAR 0.25): those at chance have a meaningless gap of 0
        above = optuna.create_study(directions=["maximize", "minimize"])
        above.add_trials(t for t in trials if t.values and t.values[0] > 0.25)
        key = lambda t: t.params["alpha"]  # noqa: E731 (add_trials renumbers: a trial is known by its alpha)
        assert sorted(map(key, front)) == sorted(map(key, above.best_trials))
        assert [t.values[0] for t in front] == sorted((t.values[0] for t in front), reverse=True)
        top = max(t.values[0] for t in trials if t.values)
        best = best_trial(trials)
        assert best.values[0] == top and best.values[1] == min(
            t.values[1] for t in trials if t.values and t.values[0] == top
        )
        assert best in front or best.values[0] <= 0.25


def test_default_storage_is_a_journal_beside_the_mlflow_store(tmp_path):
    study = load_study(make_study(tmp_path))
    assert storage_url(study) == str(tmp_path / ".gemo" / "optuna" / "searchmini.journal")
    other = load_study(make_study(tmp_path), ["search.storage='postgresql://u:secret@db/optuna'"])
    assert storage_url(other) == "postgresql://u:secret@db/optuna"


# ---- budget and retries -------------------------------------------------------------------------------------


def frozen(number, state, **system_attrs):
    now = dt.datetime.now()
    return FrozenTrial(
        number=number,
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        datetime_start=now,
        datetime_complete=None if state in (TrialState.RUNNING, TrialState.WAITING) else now,
        params={"alpha": 0.5},
        distributions={"alpha": FloatDistribution(0, 1)},
        user_attrs={},
        system_attrs=system_attrs,
        intermediate_values={},
        trial_id=number,
    )


def test_budget_counts_a_retried_trial_once():
    trials = [
        frozen(0, TrialState.COMPLETE),
        frozen(1, TrialState.PRUNED),
        frozen(2, TrialState.FAIL),  # its worker died: retried as 4, then 4 died too: retried as 5
        frozen(3, TrialState.FAIL),  # a diverging loss: counts, not retried
        frozen(4, TrialState.FAIL, failed_trial=2, retry_history=[2]),
        frozen(5, TrialState.RUNNING, failed_trial=2, retry_history=[2, 4]),
        frozen(6, TrialState.WAITING),
    ]
    counts = count_trials(trials)
    assert (counts.done, counts.running, counts.waiting) == (3, 1, 1)
    assert (counts.complete, counts.pruned, counts.failed) == (1, 1, 1)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_silent_trial_is_failed_and_retried_with_its_values_and_an_interrupted_one_too(tmp_path):
    # Study.ask stands in for the workers' Study.optimize, so each step can be checked on its own
    spec = SearchSpec(heartbeat_s=1, grace_s=2, max_retry=2)
    storage = open_storage(spec, str(tmp_path / "s.journal"))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    retry = retry_callback(spec.max_retry)
    first = study.ask()
    alpha = first.suggest_float("alpha", 0.0, 1.0)
    storage.record_heartbeat(first._trial_id)
    fail_stale(study, retry)
    assert study.trials[0].state == TrialState.RUNNING  # fresh heartbeat: alive

    time.sleep(2.5)  # no heartbeat for longer than grace_s: its worker is gone
    fail_stale(study, retry)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    second = study.ask()  # the retry is claimed first, with the same value
    assert second.number == 1 and second.suggest_float("alpha", 0.0, 1.0) == alpha
    fail_stale(study, retry)  # it inherited the old heartbeat, but its own start is recent
    assert study.trials[1].state == TrialState.RUNNING

    second.set_user_attr(INTERRUPTED_ATTR, True)  # Ctrl-C: Optuna fails it, the next run retries it
    study.tell(second, state=TrialState.FAIL)
    fail_stale(study, retry)
    fail_stale(study, retry)  # idempotent: one retry per failure
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING]
    assert trials[2].params == {"alpha": alpha} and trials[2].system_attrs["retry_history"] == [0, 1]
    assert count_trials(trials).done == 0

    third = study.ask()
    third.set_user_attr(INTERRUPTED_ATTR, True)
    study.tell(third, state=TrialState.FAIL)
    fail_stale(study, retry)  # max_retry = 2 reached: given up, and it counts as a failed trial
    assert count_trials(study.trials).done == 1 and count_trials(study.trials).waiting == 0


@pytest.mark.slow
def test_a_stop_while_a_trial_creates_its_run_has_the_trial_retried(tmp_path, monkeypatch):
    # Ctrl-C or SIGTERM can land before training starts (while the trial's MLflow run is created): the trial
    # must still count as interrupted, not as a finished failure that uses up the budget
    study = load_study(make_study(tmp_path, trials=2, epochs=1))
    real = Tracker.start_child
    calls = []

    def stopped_once(self, kind, *args, **kwargs):
        if kind == "trial" and not calls:
            calls.append(kind)
            raise KeyboardInterrupt
        return real(self, kind, *args, **kwargs)

    monkeypatch.setattr(Tracker, "start_child", stopped_once)
    with pytest.raises(KeyboardInterrupt):
        run_search(study, evaluate=False, progress=False)
    (first,) = optuna_trials(study)
    assert first.state == TrialState.FAIL and first.user_attrs[INTERRUPTED_ATTR] is True
    assert not tracker_of(study).runs("trial")  # it never got a run

    run_search(study, evaluate=False, progress=False)
    trials = assert_exactly_once(study, 2)
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == first.number]
    assert retry.params == first.params
    assert [t.user_attrs[INTERRUPTED_ATTR] for t in trials] == [True, False, False]  # the stopped one, then two


def test_a_seeded_search_replays_its_trials_and_never_repeats_a_point():
    from benchmark.search import make_sampler

    def sample(spec, numbers):
        study = optuna.create_study(direction="maximize")
        out = []
        for n in numbers:  # as the workers do: a sampler per trial, seeded by the trial's number
            study.sampler = make_sampler(spec, n)
            trial = study.ask()
            out.append(trial.suggest_float("alpha", 0.0, 1.0))
            study.tell(trial, 0.5)
        return out

    seeded = SearchSpec(seed=7, sampler="random")
    first = sample(seeded, range(6))
    assert sample(seeded, range(6)) == first  # reproducible
    assert len(set(first)) == 6
    # a resumed search (or another worker) drawing trial 3 gets trial 3's point, not trial 0's again
    assert sample(seeded, [3])[0] == first[3] != first[0]
    assert sample(SearchSpec(seed=8, sampler="random"), range(6)) != first


# ---- whole searches -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_search_never_scores_a_test_session_logs_nested_runs_and_resumes(tmp_path, monkeypatch):
    path = make_study(tmp_path, trials=3)
    study = load_study(path)
    test_ids, leaks, evaluated = set(), [], []
    real_fold, real_eval = train_module.split_fold, train_module.evaluate_split

    def fold_spy(*args, **kwargs):
        fold = real_fold(*args, **kwargs)
        test_ids.clear()
        test_ids.update(r.id for r in fold.test)
        return fold

    def eval_spy(model, loader, device, precision):
        ids = {r.id for r in loader.dataset.records}
        evaluated.append(len(ids))
        leaks.extend(ids & test_ids)
        return real_eval(model, loader, device, precision)

    monkeypatch.setattr(train_module, "split_fold", fold_spy)
    monkeypatch.setattr(train_module, "evaluate_split", eval_spy)
    assert search_progress(study) is None and not Path(storage_url(study)).exists()  # looking creates nothing
    (result,) = run_search(study, evaluate=False, progress=False)
    assert evaluated and not leaks  # validation only: no utterance of a fitted fold's test session
    assert result.counts.complete == 3 and result.best_trial is not None and not result.test
    monkeypatch.undo()

    tracker = tracker_of(study)
    (parent,) = tracker.runs("search")
    assert parent.status == "FINISHED" and parent.metrics["best_objective"] == pytest.approx(result.best_value)
    trials = assert_exactly_once(study, 3)
    runs = {r.tags["gemo.trial_number"]: r for r in tracker.runs("trial")}
    for t in trials:
        run = runs[str(t.number)]
        assert run.tags["mlflow.parentRunId"] == parent.run_id
        assert float(run.params["alpha"]) == pytest.approx(t.params["alpha"])
        assert float(run.params["model.temperature"]) == pytest.approx(t.params["temperature"])
        assert float(run.params["train.lr"]) == pytest.approx(t.params["lr"])
        assert run.metrics["objective"] == pytest.approx(t.value)
        folds = [run.metrics["val_uar_fold2"], run.metrics["val_uar_fold3"]]
        assert t.value == pytest.approx(sum(folds) / 2)
        steps = [m.step for m in tracker.client.get_metric_history(run.run_id, "intermediate")]
        assert steps == [1, 2, 3, 4]  # 2 folds x 2 epochs
        assert not any(k.startswith("test_") for k in run.metrics)
    assert not tracker.runs("cell") and not tracker.runs("search-best")

    # `gemo-bench status` reads the same trials back from the storage
    status = study_status(study)
    (progress,) = status.searches
    assert (progress.counts.done, progress.counts.complete, progress.wanted) == (3, 3, 3)
    assert (progress.best_trial, progress.best_value) == (result.best_trial, result.best_value)
    assert progress.best_params == next(t.params for t in trials if t.number == result.best_trial)
    text = render(status, "s.toml")
    assert f"  {progress.study_name}: 3 of 3 trials finished (3 complete, 0 pruned, 0 failed); best: trial " in text
    assert "next: gemo-bench search" not in text

    # resume with a larger budget: only the missing trials run, then the best is tested once
    more = load_study(path, ["search.trials=5"])
    assert "\nnext: gemo-bench search s.toml runs the 2 trials not finished or running" in render(
        study_status(more), "s.toml"
    )
    (result,) = run_search(more, progress=False)
    trials = assert_exactly_once(more, 5)
    assert result.best_value == max(t.value for t in trials)
    (cell,) = tracker.runs("cell", "FINISHED")  # protocol.folds = [1]: one test fold
    assert float(cell.params["alpha"]) == pytest.approx(result.best_values["alpha"])
    assert cell.params["fold"] == "1" and "test_uar" in cell.metrics
    (best,) = tracker.runs("search-best")
    assert best.tags["mlflow.parentRunId"] == parent.run_id and best.status == "FINISHED"
    assert best.metrics["objective"] == pytest.approx(result.best_value)
    assert best.metrics["uar_mean"] == pytest.approx(cell.metrics["test_uar"])
    assert best.tags["gemo.config_run_id"] == cell.tags["mlflow.parentRunId"]
    (again,) = run_search(more, progress=False)  # nothing left: no trial, no cell runs again
    assert len(tracker.runs("trial")) == 5 and len(tracker.runs("cell")) == 1 and again.best_trial == result.best_trial

    # the search report reads the same trials and the best's test figures
    from benchmark.cli import main
    from benchmark.reports.searches import write_search_report

    report = write_search_report(tracker, more, tmp_path / "reports")
    (row,) = report.summary.to_dict("records")
    assert (row["done"], row["budget"], row["best_trial"]) == (5, 5, result.best_trial)
    assert row["best_value"] == pytest.approx(result.best_value)
    assert row["test_uar_mean"] == pytest.approx(cell.metrics["test_uar"])
    assert "embedded corpus" in report.markdown.read_text() and "random-init" in report.markdown.read_text()
    assert main(["report", "all", str(path), "--out", str(tmp_path / "all"), "--n-boot", "20"]) == 0
    assert '<section id="search">' in (tmp_path / "all" / "searchmini" / "index.html").read_text()

    with pytest.raises(SearchError, match=r"made for another configuration \(changed: space\)"):
        run_search(load_study(path, ["search.alpha=[0.5, 1.0]"]), progress=False)


@pytest.mark.slow
def test_a_gender_gap_search_finds_the_pareto_front_and_tests_each_of_its_configurations(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.reports.searches import write_search_report

    path = make_study(tmp_path, trials=4)
    # a seeded search that trains long enough for some trials to leave chance level (UAR 0.25, gap 0)
    setting = ["data.size=200", "train.epochs=3", "model.proj_dim=32", "search.lr=[3e-3, 3e-2]", "search.seed=0"]
    both = ["search.objectives=['uar', 'gender_gap']", *setting]
    assert main(["search", str(path), *both, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    study = load_study(path, both)
    storage = open_storage(study.search, storage_url(study))
    (target,) = targets(study)
    ostudy = optuna.load_study(study_name=target.study_name, storage=storage)
    assert [d.name for d in ostudy.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = assert_exactly_once(study, 4)
    tracker = tracker_of(study)
    runs = {r.tags["gemo.trial_number"]: r for r in tracker.runs("trial")}
    epochs = 3
    assert any(t.values[1] > 0 for t in trials)
    for t in trials:
        assert t.state == TrialState.COMPLETE and not t.intermediate_values  # nothing to prune: none reported
        run = runs[str(t.number)]
        # the reference: from the trial run's per-epoch history, each fold's epoch of best validation UAR
        # (the first of equals), and |UAR_F - UAR_M| at that epoch
        history = {
            key: {m.step: m.value for m in tracker.client.get_metric_history(run.run_id, key)}
            for key in ("val_uar", "val_uar_F", "val_uar_M")
        }
        uars, gaps = [], []
        for k in range(2):
            steps = [k * epochs + e for e in range(1, epochs + 1)]
            chosen = max(steps, key=lambda s: (history["val_uar"][s], -s))
            uars.append(history["val_uar"][chosen])
            gaps.append(abs(history["val_uar_F"][chosen] - history["val_uar_M"][chosen]))
        assert t.values == pytest.approx([sum(uars) / 2, sum(gaps) / 2])
        assert run.metrics["objective"] == pytest.approx(t.values[0])
        assert run.metrics["val_gender_gap"] == pytest.approx(t.values[1])

    # Optuna's own Pareto front of the trials above chance
    above = optuna.create_study(directions=["maximize", "minimize"])
    above.add_trials(t for t in trials if t.values[0] > 0.25)
    by_alpha = {t.params["alpha"]: t.number for t in trials}  # add_trials renumbers
    front = sorted(by_alpha[t.params["alpha"]] for t in above.best_trials)
    assert front and len(front) < len(trials)  # chance-level trials are left out, and are not tested
    (parent,) = tracker.runs("search")
    assert parent.metrics["front_size"] == len(front)
    assert parent.tags["gemo.front_trials"] == ",".join(
        str(n) for n in sorted(front, key=lambda n: -trials[n].values[0])
    )
    tested = tracker.runs("search-best", "FINISHED")
    assert sorted(int(r.params["trial"]) for r in tested) == front
    cells = tracker.runs("cell", "FINISHED")
    assert len(cells) == len(front)  # protocol.folds = [1]: one test run per front configuration
    for r in tested:
        t = trials[int(r.params["trial"])]
        assert r.tags["mlflow.runName"] == f"front: trial {t.number}"
        assert r.metrics["objective"] == pytest.approx(t.values[0])
        assert r.metrics["val_gender_gap"] == pytest.approx(t.values[1])
        (cell,) = [c for c in cells if c.tags["mlflow.parentRunId"] == r.tags["gemo.config_run_id"]]
        assert float(cell.params["model.temperature"]) == pytest.approx(t.params["temperature"])
        assert r.metrics["uar_mean"] == pytest.approx(cell.metrics["test_uar"])
    assert "Pareto front of validation UAR and gender gap: " + f"{len(front)} trials" in printed
    for n in front:
        assert f"    trial {n}: UAR {trials[n].values[0]:.4f}, gap {trials[n].values[1]:.4f}" in printed

    again = main(["search", str(path), *both, "--no-progress"])  # finished: nothing runs again
    assert again == 0 and len(tracker.runs("trial")) == 4 and len(tracker.runs("cell")) == len(front)

    report = write_search_report(tracker, study, tmp_path / "reports")
    assert sorted(report.front["number"]) == front and report.front["test_uar_mean"].notna().all()
    assert (report.folder / "search_front.png").is_file() and (report.folder / "search_front.csv").is_file()
    text = report.markdown.read_text()
    assert "## Validation UAR and the gender gap" in text and "uar, gender_gap" in text

    # `gemo-bench status` reads the front back from the storage
    by_rank = sorted(front, key=lambda n: (-trials[n].values[0], trials[n].values[1], n))
    (progress,) = study_status(study).searches
    assert progress.front == tuple(by_rank) and progress.best_gap == pytest.approx(trials[by_rank[0]].values[1])
    assert f"; Pareto front: trials {', '.join(map(str, by_rank))}" in render(study_status(study), "s.toml")

    # the same storage cannot continue as a search of UAR alone
    with pytest.raises(SearchError, match=r"made for another configuration \(changed: objectives\)"):
        run_search(load_study(path, setting), progress=False)


def test_a_study_without_a_search_table_is_refused_before_anything_is_created(tmp_path, capsys):
    from benchmark.cli import main

    path = make_study(tmp_path)
    path.write_text(path.read_text().split("[search]")[0] + f'[tracking]\nuri = "sqlite:///{tmp_path / "m.db"}"\n')
    assert main(["search", str(path), "--trials", "4"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"gemo-bench: error: {path}: no [search] table: it says what to search")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["searchmini.toml"]  # no store, no journal
    # overrides may stand in for the table: then the checks of a table apply to them
    assert main(["search", str(path), "search.alpha=[0.2, 1.5]"]) == 2
    assert "search.alpha: alpha must be [0, 1], got 1.5" in capsys.readouterr().err


def test_a_search_that_samples_nothing_is_given_one_trial(tmp_path):
    fixed = ["method.variants=['emo-clap', 'sl-gemo-clap', 'ml-gemo-clap']", "search.temperature=0.1", "search.lr=3e-3"]
    study = load_study(make_study(tmp_path, trials=5), fixed)
    emo, sl, ml = targets(study)
    # Emo-CLAP has no alpha: with temperature and lr fixed, each of its 5 trials would train the same model
    assert [trial_budget(study, t) for t in (emo, sl, ml)] == [1, 5, 5]
    assert nothing_to_search(study, emo) == (
        "nothing to search (alpha is unused by Emo-CLAP; temperature and lr are not ranges in [search]): "
        "1 trial instead of 5"
    )
    assert nothing_to_search(study, sl) is None and nothing_to_search(study, ml) is None
    alpha_fixed = load_study(make_study(tmp_path, trials=5), [*fixed, "search.alpha=0.9"])
    assert [trial_budget(alpha_fixed, t) for t in targets(alpha_fixed)] == [1, 1, 1]
    assert nothing_to_search(alpha_fixed, targets(alpha_fixed)[1]).startswith(
        "nothing to search (alpha, temperature and lr are not ranges in [search])"
    )
    ranged = load_study(make_study(tmp_path, trials=5), ["method.variants=['emo-clap']"])
    assert trial_budget(ranged, targets(ranged)[0]) == 5  # temperature and lr are ranges


@pytest.mark.slow
def test_an_emo_clap_search_with_nothing_to_sample_runs_one_trial_and_the_others_their_budget(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.preflight import _check_search
    from benchmark.reports.searches import write_search_report

    path = make_study(tmp_path, trials=3, epochs=1)
    fixed = ["method.variants=['emo-clap', 'sl-gemo-clap']", "search.temperature=0.1", "search.lr=3e-3"]
    assert main(["search", str(path), *fixed, "--no-evaluate", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "note: searchmini:tiny-wavlm:emo-clap: nothing to search (alpha is unused by Emo-CLAP" in err
    assert "sl-gemo-clap: nothing" not in err
    study = load_study(path, fixed)
    storage = open_storage(study.search, storage_url(study))
    emo, sl = (optuna.load_study(study_name=t.study_name, storage=storage).get_trials() for t in targets(study))
    assert [(t.state, t.params) for t in emo] == [(TrialState.COMPLETE, {})]
    assert len(sl) == 3 and all(t.state == TrialState.COMPLETE and set(t.params) == {"alpha"} for t in sl)
    assert len(tracker_of(study).runs("trial", "FINISHED")) == 4

    # status, check and the report count the one trial as the search's whole budget
    assert [(p.wanted, p.counts.done) for p in study_status(study).searches] == [(1, 1), (3, 3)]
    assert _check_search(study).detail == "2 searches, 4 of 4 trials finished"
    report = write_search_report(tracker_of(study), study, tmp_path / "reports")
    text = report.markdown.read_text()
    assert "so its search ran one trial, the study's own configuration" in text
    assert "trials finished; the figures are provisional" not in text

    assert main(["search", str(path), *fixed, "--no-evaluate", "--no-progress"]) == 0  # finished: nothing runs
    assert len(tracker_of(study).runs("trial")) == 4


@pytest.mark.slow
def test_four_concurrent_workers_on_the_journal_duplicate_no_trial(tmp_path):
    path = make_study(tmp_path, trials=8)
    # two commands with two workers each: four workers, two coordinators, one journal
    procs = [cli("search", str(path), "--workers", "2", "--no-evaluate", cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    study = load_study(path)
    trials = assert_exactly_once(study, 8)
    assert all(t.state == TrialState.COMPLETE for t in trials)  # pruner none: every trial completes
    assert len(tracker_of(study).runs("search")) == 1
    # the work was shared: more than one worker process ran trials
    assert len({r.tags["gemo.pid"] for r in tracker_of(study).runs("trial")}) > 1


@pytest.mark.slow
def test_killed_search_resumes_to_the_target_and_retries_the_killed_trials(tmp_path):
    path = make_study(tmp_path, trials=5, epochs=3)
    study = load_study(path)
    tracker = tracker_of(study)
    proc = cli("search", str(path), "--workers", "2", "--no-evaluate", cwd=tmp_path)
    victim = wait_for_running_trial(tracker, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers, at once
    proc.communicate()
    killed = [t for t in optuna_trials(study) if t.state == TrialState.RUNNING]
    assert int(victim.tags["gemo.trial_number"]) in {t.number for t in killed}

    rerun = cli("search", str(path), "--workers", "2", "--no-evaluate", cwd=tmp_path)
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out
    trials = assert_exactly_once(study, 5)
    for dead in killed:  # failed once its heartbeat was stale, then run again with the same values
        assert trials[dead.number].state == TrialState.FAIL
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
        assert len(retries) == 1 and retries[0].params == dead.params
        assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert tracker.client.get_run(victim.run_id).info.status == "KILLED"


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_covered_by_the_others(tmp_path):
    path = make_study(tmp_path, trials=4, epochs=3)
    study = load_study(path)
    tracker = tracker_of(study)
    proc = cli("search", str(path), "--workers", "2", "--no-evaluate", cwd=tmp_path)
    victim = wait_for_running_trial(tracker, proc)
    os.kill(int(victim.tags["gemo.pid"]), signal.SIGKILL)  # one worker only
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert "retried by the other workers" in out
    trials = assert_exactly_once(study, 4)
    number = int(victim.tags["gemo.trial_number"])
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert retry.params == trials[number].params and retry.state == TrialState.COMPLETE
    assert tracker.client.get_run(victim.run_id).info.status == "KILLED"


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop",
    [signal.SIGINT, signal.SIGTERM],
    # the process group is signalled, as a terminal's Ctrl-C and `timeout` do (`kill PID` of the coordinator
    # alone is tested for `run` in test_faults.py)
    ids=["ctrl-c", "timeout"],
)
def test_ctrl_c_or_sigterm_stops_the_shipped_search_and_the_next_run_retries_the_interrupted_trial(tmp_path, stop):
    # the study `nox -s search` runs, with a smaller budget, its own store and a short heartbeat; its trials
    # train for 30 epochs, not 6, so that a trial seen at its first epoch is still training at Ctrl-C (at 6
    # a trial lasts two seconds, and the search could end between the look and the signal)
    path = REPO / "studies" / "search_embedded.toml"
    overrides = [
        "search.trials=3",
        "train.epochs=30",
        "search.heartbeat_s=1",
        "search.grace_s=4",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    study = load_study(path, overrides)
    tracker = tracker_of(study)
    proc = cli("search", str(path), *overrides, "--workers", "2", "--no-evaluate", cwd=tmp_path)
    victim = wait_for_running_trial(tracker, proc)
    os.killpg(proc.pid, stop)
    out, _ = proc.communicate(timeout=300)
    name = "Ctrl-C" if stop == signal.SIGINT else "SIGTERM"
    assert proc.returncode == 128 + stop, out
    assert f"interrupted ({name}); run the same command again to resume" in out, out
    assert "Traceback" not in out, out  # the workers stop quietly; the command says what to do
    after = optuna_trials(study)
    interrupted = [t for t in after if t.user_attrs.get(INTERRUPTED_ATTR)]
    number = int(victim.tags["gemo.trial_number"])
    # every trial's state and attributes, and the workers' output, should this ever fail
    seen = {t.number: (t.state.name, dict(t.user_attrs), sorted(t.system_attrs)) for t in after}
    assert interrupted, (seen, out)
    # the trial seen mid-training was interrupted, unless it finished in the instant between the look and
    # Ctrl-C (a trial of this study trains for a few seconds on cached features)
    assert number in {t.number for t in interrupted} or after[number].state == TrialState.COMPLETE, (seen, out)
    for t in interrupted:
        assert t.state == TrialState.FAIL, (seen, out)
        run = tracker.client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED", (seen, out)
        assert run.data.tags["gemo.end_reason"] == f"interrupted ({name}); the next run retries the trial"

    rerun = cli("search", str(path), *overrides, "--workers", "2", "--no-evaluate", cwd=tmp_path)
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out
    trials = assert_exactly_once(study, 3)
    for t in interrupted:  # each retried once, with the same values
        (retry,) = [r for r in trials if r.system_attrs.get("failed_trial") == t.number]
        assert retry.params == t.params and retry.state in (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.mark.slow
def test_search_cost_times_every_mode_of_a_trial(tmp_path, capsys):
    from benchmark.cli import main

    path = make_study(tmp_path, epochs=1)
    out = tmp_path / "cost.json"
    assert main(["search-cost", str(path), "search.folds=[2]", "--repeats", "1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures["modes"]) == {"cached", "cold", "uncached"}
    assert all(len(m["all"]) == 1 and m["seconds"] > 0 for m in figures["modes"].values())
    assert figures["values"]["temperature"] == pytest.approx((0.05 * 0.5) ** 0.5)  # the log-range middle
    assert "cached" in capsys.readouterr().out
    with pytest.raises(SearchError, match=r"train\.freeze_encoders: set 'audio' or 'all'"):
        from benchmark.search import measure_trial_cost

        measure_trial_cost(load_study(path, ["train.freeze_encoders=none"]))
