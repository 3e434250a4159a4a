"""Where a study's searches keep their trials, read without torch: targets, the storage, counts, the best.

``benchmark.search`` runs searches; ``gemo-bench status`` and the search report only read them, so what
they share lives here and imports neither torch nor transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # the documented way to give a storage a heartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from benchmark import provenance
from benchmark.data.records import CLASSES
from benchmark.studies import SearchSpec, Study
from benchmark.tracking import resolve_uri, state_dir

HEARTBEAT_ATTR = "gemo:heartbeat"
CHANCE = 1 / len(CLASSES)  # the UAR of a model that gives every utterance one class
GAP_ATTR = "val_gender_gap"  # a trial's mean |UAR_F - UAR_M| on validation, whatever its objectives
SEARCHED = ("alpha", "temperature", "lr")  # the values a search may sample


class SearchError(ValueError):
    """A search that cannot start; the message names the study, storage or key."""


@dataclass(frozen=True)
class Target:
    """One search of a study: an audio encoder x a variant, i.e. one Optuna study."""

    audio_encoder: str
    variant: str
    study_name: str


def targets(study: Study) -> list[Target]:
    return [
        Target(audio, variant, f"{study.name}:{audio}:{variant}")
        for audio in study.encoders.audio
        for variant in study.method.variants
    ]


def sampled(study: Study, target: Target) -> tuple[str, ...]:
    """The values ``target``'s search samples: each range of ``[search]``, except alpha for Emo-CLAP (it has none)."""
    return tuple(
        name
        for name, rng in study.search.space().items()
        if isinstance(rng, tuple) and not (name == "alpha" and target.variant == "emo-clap")
    )


def trial_budget(study: Study, target: Target) -> int:
    """Finished trials ``target``'s search runs: ``search.trials``, or 1 when it samples nothing.

    Every trial of a search with no range would train the same configuration, so one stands for them all.
    """
    return study.search.trials if sampled(study, target) else 1


def nothing_to_search(study: Study, target: Target) -> str | None:
    """Why ``target``'s search samples nothing (it then runs one trial), or None when it samples a value."""
    if sampled(study, target):
        return None
    fixed = [name for name in SEARCHED if not (name == "alpha" and target.variant == "emo-clap")]
    why = "alpha is unused by Emo-CLAP; " if target.variant == "emo-clap" else ""
    names = " and ".join([", ".join(fixed[:-1]), fixed[-1]] if len(fixed) > 1 else fixed)
    return (
        f"nothing to search ({why}{names} {'are' if len(fixed) > 1 else 'is'} not ranges in [search]): "
        f"1 trial instead of {study.search.trials}"
    )


def search_folds(study: Study) -> tuple[int, ...]:
    return study.search.folds or study.protocol.folds


def storage_url(study: Study) -> str:
    """The search's storage: ``search.storage``, else a journal file beside the MLflow store."""
    if study.search.storage:
        return study.search.storage
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in study.name)
    return str(state_dir(resolve_uri(study.tracking.uri)) / "optuna" / f"{slug}.journal")


def is_journal(url: str) -> bool:
    """A path is a journal file; anything with a scheme (``postgresql://``, ``sqlite:///``) is SQLAlchemy's."""
    return "://" not in url


# ---- storage ------------------------------------------------------------------------------------------------


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat protocol of its RDB storage.

    A running trial's worker writes the time into a system attribute every ``heartbeat_interval``
    seconds (Optuna's own heartbeat thread calls :meth:`record_heartbeat`); a RUNNING trial whose last
    heartbeat (or start) is older than ``grace_period`` is stale: ``optuna.storages.fail_stale_trials``
    (called by ``Study.optimize`` before each trial) fails it and hands it to the stale-trial callback.
    """

    def __init__(
        self,
        backend: JournalFileBackend,
        heartbeat_interval: int,
        grace_period: int,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        super().__init__(backend)
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        # A trial failed meanwhile by another worker (its heartbeat was late) stays failed; the
        # heartbeat thread must not die of it.
        with contextlib.suppress(UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # a retried trial inherits its predecessor's attributes, so its own start counts too
            beat = float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0))
            start = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
            if now - max(beat, start) > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_trial_callback


def retry_callback(max_retry: int) -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def open_storage(spec: SearchSpec, url: str) -> BaseStorage:
    """The Optuna storage at ``url`` (a journal file path or an SQLAlchemy URL), with heartbeats.

    Raises:
        SearchError: the storage cannot be opened (naming it, with the password masked).
    """
    callback = retry_callback(spec.max_retry)
    try:
        if is_journal(url):
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            return HeartbeatJournalStorage(JournalFileBackend(url), spec.heartbeat_s, spec.grace_s, callback)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat arguments are "experimental"
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=spec.heartbeat_s,
                grace_period=spec.grace_s,
                heartbeat_stale_trial_callback=callback,
            )
    except Exception as exc:  # SQLAlchemy, driver and OS errors all mean the same here
        raise SearchError(f"search.storage: cannot open {provenance.redact_uri(url)}: {exc}") from exc


# ---- budget -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Trials of one search: ``done`` count against the budget; ``running`` may still complete."""

    done: int
    running: int
    waiting: int
    complete: int
    pruned: int
    failed: int


def count_trials(trials: list[FrozenTrial]) -> Counts:
    """Finished trials count once; a failed trial that was retried counts through its retry."""
    replaced = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    failed = [t for t in by_state[TrialState.FAIL] if t.number not in replaced]
    complete, pruned = len(by_state[TrialState.COMPLETE]), len(by_state[TrialState.PRUNED])
    return Counts(
        done=complete + pruned + len(failed),
        running=len(by_state[TrialState.RUNNING]),
        waiting=len(by_state[TrialState.WAITING]),
        complete=complete,
        pruned=pruned,
        failed=len(failed),
    )


def search_id(url: str, target: Target) -> str:
    return hashlib.sha256(json.dumps([url, target.study_name]).encode()).hexdigest()[:16]


def uar_value(trial: FrozenTrial) -> float:
    """A trial's mean best validation UAR: its value, or its first value in a multi-objective search."""
    return math.nan if trial.values is None else float(trial.values[0])


def gap_value(trial: FrozenTrial) -> float:
    """A trial's mean validation gender gap |UAR_F - UAR_M| (its second value in a multi-objective search);
    NaN for trials of searches from before it was recorded."""
    if trial.values is not None and len(trial.values) > 1:
        return float(trial.values[1])
    return float(trial.user_attrs.get(GAP_ATTR, math.nan))


def best_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The complete trial with the highest validation UAR (then the smallest gender gap, then the earliest),
    None before one completes. In a multi-objective search it is the front's highest-UAR end."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return min(complete, key=_rank) if complete else None


def _rank(t: FrozenTrial) -> tuple[float, float, int]:
    gap = gap_value(t)
    return -uar_value(t), gap if math.isfinite(gap) else math.inf, t.number


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials above chance that no other one dominates on (higher UAR, smaller gender gap), by UAR.

    A trial dominates another when it is at least as good in both and better in one; trials with the same
    two values are all on the front. Left out: trials without a recorded gap, and trials at chance UAR
    (:data:`CHANCE`), which give every utterance one class and so have a gap of 0 that says nothing.
    """
    points = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and math.isfinite(gap_value(t)) and uar_value(t) > CHANCE + 1e-9
    ]

    def dominates(a: FrozenTrial, b: FrozenTrial) -> bool:
        ua, ga, ub, gb = uar_value(a), gap_value(a), uar_value(b), gap_value(b)
        return ua >= ub and ga <= gb and (ua > ub or ga < gb)

    return sorted((t for t in points if not any(dominates(o, t) for o in points)), key=_rank)


@dataclass(frozen=True)
class SearchProgress:
    """One search's trials so far, for ``gemo-bench status``; ``counts`` is None before its first trial."""

    study_name: str
    wanted: int
    counts: Counts | None
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, float] = field(default_factory=dict)
    best_gap: float | None = None  # its mean validation gender gap (None: not recorded)
    front: tuple[int, ...] = ()  # a multi-objective search's Pareto front so far, by UAR


def begun_searches(study: Study) -> tuple[str, dict[Target, list[FrozenTrial] | None]] | None:
    """(storage URL, each search's trials, None for one not begun); None when no search of the study has begun.

    A journal file that does not exist is not created.
    """
    url = storage_url(study)
    if is_journal(url) and not Path(url).is_file():
        return None
    storage = open_storage(study.search, url)
    names = set(optuna.get_all_study_names(storage))
    wanted = targets(study)
    if not names & {t.study_name for t in wanted}:
        return None
    return url, {
        t: optuna.load_study(study_name=t.study_name, storage=storage).get_trials(deepcopy=False)
        if t.study_name in names
        else None
        for t in wanted
    }


def search_progress(study: Study) -> tuple[str, list[SearchProgress]] | None:
    """(storage, each search's progress) read from the storage; None when no search of the study has begun."""
    begun = begun_searches(study)
    if begun is None:
        return None
    url, searches = begun
    out = []
    for t, trials in searches.items():
        if trials is None:
            out.append(SearchProgress(t.study_name, trial_budget(study, t), None))
            continue
        progress = SearchProgress(t.study_name, trial_budget(study, t), count_trials(trials))
        best = best_trial(trials)
        if best is not None:
            gap = gap_value(best)
            progress = replace(
                progress,
                best_trial=best.number,
                best_value=uar_value(best),
                best_params=dict(best.params),
                best_gap=gap if math.isfinite(gap) else None,
                front=tuple(t.number for t in pareto_front(trials)) if study.search.multi_objective else (),
            )
        out.append(progress)
    return provenance.redact_uri(url), out


def searched_alphas(study: Study) -> dict[str, list[tuple[float, float]]]:
    """Per audio encoder, ``(alpha, objective)`` of each complete trial of its SL-GEmo-CLAP search, in trial order.

    Empty when no such search has begun or alpha is not searched (a fixed value). Nothing is created.
    """
    if "sl-gemo-clap" not in study.method.variants or not isinstance(study.search.space()["alpha"], tuple):
        return {}
    begun = begun_searches(study)
    if begun is None:
        return {}
    out = {}
    for target, trials in begun[1].items():
        if target.variant != "sl-gemo-clap" or trials is None:
            continue
        done = [t for t in trials if t.state == TrialState.COMPLETE and "alpha" in t.params]
        out[target.audio_encoder] = [(float(t.params["alpha"]), uar_value(t)) for t in done]
    return out
