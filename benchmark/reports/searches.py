"""Search report: what each Optuna search of a study found, how settled it is, and how the objective moves.

Trials are read from the search's Optuna storage (the trials as the sampler saw them: values, states,
distributions, intermediate values); the MLflow store gives the provenance (data source, weights, code
version of the trial runs) and the test figures of each search's best configuration (its ``search-best``
run). Per search (audio encoder x variant):

- trials complete, pruned and failed against the budget, and the share of the fold x epoch steps that
  pruning skipped;
- the best trial: its objective (the mean best validation UAR over the search folds), its values, and
  when it came (the k-th of N finished trials); found in the last quarter of 8 or more trials, the search
  may still be improving;
- the near-best region: the range of each searched value over the complete trials within 1 point of the
  best objective; when it covers half of the searched range or more, the objective is flat in that value;
- whether a best value lies at the edge of its range (the outer 5 %, on a log scale for log-uniform
  ranges): the optimum may lie outside it, unless the edge is a natural limit (alpha = 0 or 1);
- fANOVA importances (Optuna's ``FanovaImportanceEvaluator``, seed 0) of the searched values, from 8
  complete trials on: which value the objective depends on most, a rough guide with few trials;
- the best configuration's test WAR/UAR (mean ± sample std over the protocol folds), and how far its test
  UAR falls below the objective (5 points or more: choosing the best of many trials on a few validation
  folds mostly chose luck), and per encoder the
  gender-aware searches against the Emo-CLAP search. Both bests are maxima over trials on the same
  validation folds, so their difference flatters the search with more trials or values; the best
  configurations are ordinary fold runs, so ``report ablation`` tests them fold by fold;
- each search's Pareto front of validation UAR and validation gender gap |UAR_F - UAR_M| (trials above
  chance), with the test UAR and test F - M of the front configurations that were run on the protocol folds:
  all of them in a search with ``objectives = ["uar", "gender_gap"]``, only the best in one of UAR alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import MaxNLocator
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState

from benchmark import provenance
from benchmark.reports.common import ReportFolder, header_lines, md_table, pct, pm, signed, suptitle
from benchmark.reports.plots import plt
from benchmark.reports.table import VARIANT_NAMES, cell_frame, describe_source
from benchmark.search_store import (
    SEARCHED,
    Target,
    begun_searches,
    best_trial,
    count_trials,
    gap_value,
    pareto_front,
    search_id,
    trial_budget,
    uar_value,
)
from benchmark.studies import Study
from benchmark.tracking import Tracker

NEAR_BEST = 0.01  # complete trials within 1 point of validation UAR of the best form the near-best region
EDGE = 0.05  # a best value in the outer 5 % of its range lies at the edge
FLAT = 0.5  # a near-best region covering half the range or more: the objective is flat in that value
FLATTERED = 0.05  # the best's test UAR 5 points or more below its objective: the objective was luck
LATE = 0.75  # a best found after three quarters of the trials: the search may still be improving
MIN_TRIALS_LATE = 8
MIN_TRIALS_IMPORTANCE = 8
TOP = 5  # trials listed per search
SYMBOLS = {"alpha": "α", "temperature": "T", "lr": "lr"}
NATURAL = {"alpha": (0.0, 1.0)}  # range ends that are limits of the method, not of the search


class NoSearchError(ValueError):
    """No search of the study has begun; nothing is written."""


@dataclass(frozen=True)
class SearchReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    summary: pd.DataFrame  # one row per search
    trials: pd.DataFrame  # one row per trial of every search (also search_trials.csv)
    notes: tuple[str, ...]
    front: pd.DataFrame | None = None  # each search's Pareto front of UAR and gender gap (search_front.csv)


def trial_frame(target: Target, trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: its state and value, the searched values, steps trained, per-fold validation UAR.

    ``retried``: a failed trial that was run again as a later trial (it does not count against the budget).
    ``last_intermediate``: the running objective at the last step reported (where a pruned trial stopped).
    """
    replaced = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        steps = max(t.intermediate_values) if t.intermediate_values else 0
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else math.nan
        )
        folds = {k: float(v) for k, v in t.user_attrs.items() if k.startswith("val_uar_fold")}
        rows.append(
            {
                "search": target.study_name,
                "encoder": target.audio_encoder,
                "variant": target.variant,
                "number": t.number,
                "state": t.state.name,
                "retried": t.number in replaced,
                "value": uar_value(t),
                "gap": gap_value(t),
                **{p: float(t.params[p]) if p in t.params else math.nan for p in SEARCHED},
                "steps": steps,
                "last_intermediate": float(t.intermediate_values[steps]) if steps else math.nan,
                "duration_s": duration,
                **dict(sorted(folds.items())),
            }
        )
    cols = ["search", "encoder", "variant", "number", "state", "retried", "value", "gap", *SEARCHED, "steps"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*cols, "last_intermediate", "duration_s"])


def front_frame(
    target: Target, trials: Sequence[FrozenTrial], tested: Mapping[int, Mapping[str, float]]
) -> pd.DataFrame:
    """The search's Pareto front of validation UAR (higher) and gender gap (smaller), by UAR.

    ``tested`` maps a trial number to its ``search-best`` run's metrics: a multi-objective search tests
    every front trial, a single-objective one only its best.
    """
    objectives = _objectives(trials)
    rows = []
    for t in pareto_front(list(trials)):
        test = tested.get(t.number, {})
        rows.append(
            {
                "search": target.study_name,
                "encoder": target.audio_encoder,
                "variant": target.variant,
                "objectives": objectives,
                "number": t.number,
                "value": uar_value(t),
                "gap": gap_value(t),
                **{p: float(t.params[p]) if p in t.params else math.nan for p in SEARCHED},
                **{
                    f"test_{k}": float(test.get(k, math.nan))
                    for k in ("uar_mean", "uar_std", "uar_F_mean", "uar_M_mean", "folds")
                },
            }
        )
    return pd.DataFrame(rows)


def _objectives(trials: Sequence[FrozenTrial]) -> str:
    """What the search optimised, read from its trials: two values per trial in a two-objective search."""
    return "uar, gender_gap" if any(t.values is not None and len(t.values) > 1 for t in trials) else "uar"


def range_position(value: float, dist: FloatDistribution) -> float:
    """Where ``value`` lies in the distribution's range, 0 at the low end and 1 at the high end (log if log)."""
    lo, hi, v = dist.low, dist.high, value
    if dist.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo) if hi > lo else 0.5


def importances(trials: Sequence[FrozenTrial], params: Sequence[str]) -> dict[str, float]:
    """fANOVA importance of each searched value over the complete trials; empty with too few of them."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(params) < 2 or len(complete) < MIN_TRIALS_IMPORTANCE:
        return {}
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created in memory" line
    try:
        study = optuna.create_study(direction="maximize")
        # the validation UAR alone, also of a multi-objective search's trials
        study.add_trials(
            optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=uar_value(t))
            for t in complete
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=0), params=list(params), normalize=True
            )
    finally:
        optuna.logging.set_verbosity(level)
    return {p: float(found.get(p, 0.0)) for p in params}


def summarize_search(
    target: Target, trials: Sequence[FrozenTrial], budget: int, tested: Mapping[str, float] | None
) -> dict:
    """One search's row of ``search.csv`` (see the module docstring for each figure)."""
    counts = count_trials(list(trials))
    row: dict = {
        "search": target.study_name,
        "encoder": target.audio_encoder,
        "variant": target.variant,
        "budget": budget,
        "done": counts.done,
        "complete": counts.complete,
        "pruned": counts.pruned,
        "failed": counts.failed,
        "running": counts.running,
    }
    best = best_trial(list(trials))
    dists = _distributions(trials)
    row["searched"] = " ".join(dists)
    frame = trial_frame(target, trials)
    finished = frame[frame["state"].isin(["COMPLETE", "PRUNED"]) | ((frame["state"] == "FAIL") & ~frame["retried"])]
    complete = frame[frame["state"] == "COMPLETE"]
    full = complete["steps"].max() if len(complete) else frame["steps"].max()
    pruned = frame[frame["state"] == "PRUNED"]
    # the fold x epoch steps finished trials would have trained without pruning, and the share skipped
    row["steps_skipped"] = (
        float((full - pruned["steps"]).clip(lower=0).sum() / (len(finished) * full))
        if len(finished) and full and math.isfinite(full)
        else math.nan
    )
    row["best_trial"] = best.number if best is not None else math.nan
    row["best_value"] = uar_value(best) if best is not None else math.nan
    row["best_gap"] = gap_value(best) if best is not None else math.nan
    row["objectives"] = _objectives(trials)
    row["found_at"] = int((finished["number"] <= best.number).sum()) if best is not None else math.nan
    near = complete[complete["value"] >= row["best_value"] - NEAR_BEST - 1e-12] if best is not None else complete[:0]
    row["near_trials"] = len(near)
    for p in SEARCHED:
        row[f"best_{p}"] = float(best.params[p]) if best is not None and p in best.params else math.nan
        row[f"near_{p}_min"] = near[p].min() if p in dists and len(near) else math.nan
        row[f"near_{p}_max"] = near[p].max() if p in dists and len(near) else math.nan
        edge, span = "", math.nan
        if p in dists and best is not None:
            pos = range_position(row[f"best_{p}"], dists[p])
            edge = "low" if pos <= EDGE else "high" if pos >= 1 - EDGE else ""
            span = range_position(row[f"near_{p}_max"], dists[p]) - range_position(row[f"near_{p}_min"], dists[p])
        row[f"edge_{p}"] = edge
        row[f"near_{p}_span"] = span
    found = importances(trials, list(dists))
    for p in SEARCHED:
        row[f"importance_{p}"] = found.get(p, math.nan)
    for key in ("war_mean", "war_std", "uar_mean", "uar_std", "folds"):
        row[f"test_{key}"] = float(tested[key]) if tested and key in tested else math.nan
    return row


def _distributions(trials: Sequence[FrozenTrial]) -> dict[str, FloatDistribution]:
    """The searched values and their ranges, in the order of :data:`SEARCHED`."""
    found: dict[str, FloatDistribution] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, FloatDistribution):
                found.setdefault(name, dist)
    return {p: found[p] for p in SEARCHED if p in found}


def notes(summary: pd.DataFrame, ranges: Mapping[str, Mapping[str, FloatDistribution]]) -> list[str]:
    """Sentences on what the searches call for: unfinished, late bests, values at an edge, flat objectives."""
    out = []
    for _, r in summary.iterrows():
        name = f"**{r['encoder']} {VARIANT_NAMES.get(r['variant'], r['variant'])}**"
        if r["done"] < r["budget"] or r["running"]:
            out.append(
                f"{name}: {int(r['done'])} of {int(r['budget'])} trials finished"
                + (f", {int(r['running'])} running" if r["running"] else "")
                + "; the figures are provisional (`gemo-bench search STUDY` resumes the search)."
            )
        if not r["complete"]:
            out.append(f"{name}: no trial completed, so there is no best value yet.")
            continue
        if not r["searched"]:
            out.append(
                f"{name}: no `[search]` range applies to this variant, so its search ran one trial, the study's own "
                "configuration."
            )
        if r["done"] >= MIN_TRIALS_LATE and r["found_at"] > LATE * r["done"]:
            out.append(
                f"{name}: the best trial came {int(r['found_at'])} of {int(r['done'])} finished trials in: the "
                "search may still be improving; a larger `--trials` extends it."
            )
        gap = r["best_value"] - r["test_uar_mean"]
        if gap > FLATTERED and r["complete"] > 1:  # one trial is not a best of several
            out.append(
                f"{name}: the best configuration's test UAR is {100 * gap:.1f} points below its objective: the best "
                f"of {int(r['complete'])} trials on the validation folds was largely luck; judge it by the test "
                "figures, and more `search.folds` make the objective less noisy."
            )
        for p, dist in ranges[r["search"]].items():
            value, sym = r[f"best_{p}"], SYMBOLS[p]
            if r[f"edge_{p}"]:
                end = dist.low if r[f"edge_{p}"] == "low" else dist.high
                if NATURAL.get(p) and end in NATURAL[p]:
                    meaning = (
                        "(Emo-CLAP's weighting: the gender targets count for little)"
                        if end == 1.0
                        else "(the gender targets dominate the emotion ones)"
                    )
                    out.append(f"{name}: the best {sym} = {value:.3g} lies at the end {end:g} of its range {meaning}.")
                else:
                    out.append(
                        f"{name}: the best {sym} = {value:.3g} lies at the {r[f'edge_{p}']} end of its range "
                        f"[{dist.low:g}, {dist.high:g}]: the optimum may lie outside it; widen `search.{p}`."
                    )
            if r["near_trials"] >= 3 and r[f"near_{p}_span"] >= FLAT:
                out.append(
                    f"{name}: the objective is flat in {sym}: {int(r['near_trials'])} complete trials with {sym} "
                    f"from {r[f'near_{p}_min']:.3g} to {r[f'near_{p}_max']:.3g} are within "
                    f"{100 * NEAR_BEST:g} point of the best."
                )
    return out


def comparisons(summary: pd.DataFrame) -> pd.DataFrame:
    """Per gender-aware search with an Emo-CLAP search of the same encoder: best objective and test UAR deltas."""
    rows = []
    for encoder, g in summary.groupby("encoder", sort=False):
        base = g[g["variant"] == "emo-clap"]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in g[g["variant"] != "emo-clap"].iterrows():
            rows.append(
                {
                    "encoder": encoder,
                    "variant": r["variant"],
                    "best_value": r["best_value"],
                    "emo_clap_best_value": b["best_value"],
                    "diff_value": r["best_value"] - b["best_value"],
                    "test_uar_mean": r["test_uar_mean"],
                    "emo_clap_test_uar_mean": b["test_uar_mean"],
                    "diff_test_uar": r["test_uar_mean"] - b["test_uar_mean"],
                }
            )
    return pd.DataFrame(rows)


def _value(x: float, p: str) -> str:
    return "–" if not math.isfinite(x) else f"{x:.3g}" if p != "alpha" else f"{x:.2f}"


def _near(r: pd.Series, p: str) -> str:
    lo, hi = r[f"near_{p}_min"], r[f"near_{p}_max"]
    return "–" if not math.isfinite(lo) else _value(lo, p) if lo == hi else f"{_value(lo, p)}–{_value(hi, p)}"


def markdown(
    summary: pd.DataFrame,
    trials: pd.DataFrame,
    head: Mapping[str, str],
    note_lines: Sequence[str],
    figures: Sequence[str],
    front: pd.DataFrame | None = None,
) -> str:
    lines = header_lines(head)
    lines += [
        "One Optuna search per audio encoder x variant. *Objective*: the mean, over the search folds, of each "
        "fold's best validation UAR (validation is carved from the training sessions; no test session is "
        "scored during a search). *Found at*: the best trial's place among the finished trials. *Near-best*: "
        f"the range of each value over the complete trials within {100 * NEAR_BEST:g} point of the best. "
        f"*Importance*: fANOVA (Optuna, seed 0) from {MIN_TRIALS_IMPORTANCE} complete trials on. *Test*: the best "
        "configuration run on every protocol fold, mean ± sample std (`report table`, `ablation` and `bias` "
        "cover these runs too); *objective − test UAR*, in points, is how much choosing the best of many trials on the "
        "validation folds flattered the objective. *Skipped*: the share of fold x epoch steps that pruning spared the finished "
        "trials.",
        "",
    ]
    if note_lines:
        lines += [*(f"- {n}" for n in note_lines), ""]
    sym = [SYMBOLS[p] for p in SEARCHED]
    for encoder, g in summary.groupby("encoder", sort=False):
        lines += [f"## {encoder}", ""]
        table = []
        for _, r in g.iterrows():
            best = "–" if not math.isfinite(r["best_value"]) else str(int(r["best_trial"]))
            table.append(
                [
                    VARIANT_NAMES.get(r["variant"], r["variant"]),
                    f"{int(r['done'])} of {int(r['budget'])} ({int(r['complete'])}/{int(r['pruned'])}/"
                    f"{int(r['failed'])})",
                    best,
                    pct(r["best_value"]),
                    *(_value(r[f"best_{p}"], p) for p in SEARCHED),
                    "–" if not math.isfinite(r["found_at"]) else f"{int(r['found_at'])} of {int(r['done'])}",
                    "–" if not math.isfinite(r["steps_skipped"]) else f"{100 * r['steps_skipped']:.0f} %",
                    pm(r["test_war_mean"], r["test_war_std"]),
                    pm(r["test_uar_mean"], r["test_uar_std"]),
                    signed(r["best_value"] - r["test_uar_mean"]),
                ]
            )
        cols = [
            "search",
            "trials (complete/pruned/failed)",
            "best trial",
            "objective",
            *(f"best {s}" for s in sym),
            "found at",
            "skipped",
            "test WAR",
            "test UAR",
            "objective − test UAR",
        ]
        lines += md_table(cols, table)
        table = [
            [
                VARIANT_NAMES.get(r["variant"], r["variant"]),
                int(r["near_trials"]),
                *(_near(r, p) for p in SEARCHED),
                *("–" if not math.isfinite(r[f"importance_{p}"]) else f"{r[f'importance_{p}']:.2f}" for p in SEARCHED),
            ]
            for _, r in g.iterrows()
        ]
        cols = ["search", "near-best trials", *(f"near-best {s}" for s in sym), *(f"importance {s}" for s in sym)]
        lines += md_table(cols, table)
        top = trials[(trials["encoder"] == encoder) & (trials["state"] == "COMPLETE")]
        top = top.sort_values(["value", "number"], ascending=[False, True]).groupby("search", sort=False).head(TOP)
        if len(top):
            order = {s: i for i, s in enumerate(g["search"])}
            top = top.sort_values("search", key=lambda s: s.map(order), kind="stable")
            rows = [
                [VARIANT_NAMES.get(t["variant"], t["variant"]), int(t["number"]), pct(t["value"])]
                + [_value(t[p], p) for p in SEARCHED]
                for _, t in top.iterrows()
            ]
            lines += [f"Best {TOP} complete trials of each search:", ""]
            lines += md_table(["search", "trial", "objective", *sym], rows)
    diffs = comparisons(summary)
    if len(diffs):
        lines += ["## Against the Emo-CLAP search", ""]
        rows = [
            [
                d["encoder"],
                VARIANT_NAMES.get(d["variant"], d["variant"]),
                pct(d["best_value"]),
                pct(d["emo_clap_best_value"]),
                signed(d["diff_value"]),
                pct(d["test_uar_mean"]),
                pct(d["emo_clap_test_uar_mean"]),
                signed(d["diff_test_uar"]),
            ]
            for _, d in diffs.iterrows()
        ]
        cols = ["encoder", "search", "objective", "Emo-CLAP", "Δ", "test UAR", "Emo-CLAP test UAR", "Δ test"]
        lines += md_table(cols, rows)
        lines += [
            "Both objectives are maxima over trials on the same validation folds, so Δ favours the search with "
            "more trials or more values searched; `gemo-bench report ablation` tests the best configurations "
            "fold by fold on the test sessions.",
            "",
        ]
    if front is not None:
        lines += front_section(front)
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def front_section(front: pd.DataFrame) -> list[str]:
    """Each search's Pareto front of validation UAR and gender gap, with the test figures of those tested."""
    lines = [
        "## Validation UAR and the gender gap",
        "",
        "Every trial also records its *gap*: |UAR_F − UAR_M| on the validation split at each fold's chosen "
        "epoch, in points, averaged over the search folds. Listed are each search's *Pareto front*: the "
        "complete trials that no other trial beats on both UAR (higher) and gap (smaller). A search with "
        '`objectives = ["uar", "gender_gap"]` optimised both and ran every front configuration on the test '
        "folds; a search of UAR alone tested only its best, and its front is what its trials happened to "
        "show. *Test F − M*: the configuration's mean test UAR of female minus male speakers over the "
        "protocol folds. A gap measured on a small validation split (a few dozen utterances per gender) is "
        "noisy: read a small gap on the test folds before trusting it. Trials at chance UAR (25 % on 4 classes) are left out: "
        "they give every utterance one class, so their gap of 0 says nothing about fairness.",
        "",
    ]
    sym = [SYMBOLS[p] for p in SEARCHED]
    rows = [
        [
            f["encoder"],
            VARIANT_NAMES.get(f["variant"], f["variant"]),
            f["objectives"],
            int(f["number"]),
            pct(f["value"]),
            pct(f["gap"]),
            *(_value(f[p], p) for p in SEARCHED),
            pm(f["test_uar_mean"], f["test_uar_std"]),
            signed(f["test_uar_F_mean"] - f["test_uar_M_mean"]),
        ]
        for _, f in front.iterrows()
    ]
    cols = ["encoder", "search", "objectives", "trial", "UAR", "gap", *sym, "test UAR", "test F − M"]
    return [*lines, *md_table(cols, rows)]


def figure(summary: pd.DataFrame, trials: pd.DataFrame, ranges: Mapping[str, Mapping[str, FloatDistribution]], title):
    """A row per encoder: the objective against each searched value, and the best objective so far."""
    encoders = list(dict.fromkeys(summary["encoder"]))
    params = [p for p in SEARCHED if any(p in r for r in ranges.values())]
    ncols = len(params) + 1
    fig, axes = plt.subplots(
        len(encoders), ncols, figsize=(3.6 * ncols, 3.1 * len(encoders) + 0.9), dpi=110, squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, encoder in zip(axes, encoders, strict=True):
        g = summary[summary["encoder"] == encoder]
        for i, (_, s) in enumerate(g.iterrows()):
            colour, label = colours[i % len(colours)], VARIANT_NAMES.get(s["variant"], s["variant"])
            t = trials[trials["search"] == s["search"]]
            done, cut = t[t["state"] == "COMPLETE"], t[t["state"] == "PRUNED"]
            for ax, p in zip(row, params, strict=False):
                if p not in ranges[s["search"]]:
                    if math.isfinite(s["best_value"]):  # not searched (Emo-CLAP's alpha): its best as a line
                        ax.axhline(100 * s["best_value"], color=colour, ls="--", lw=1, label=f"{label} (best)")
                    continue
                ax.scatter(done[p], 100 * done["value"], s=18, color=colour, label=label)
                ax.scatter(cut[p], 100 * cut["last_intermediate"], s=18, facecolors="none", edgecolors=colour)
                if math.isfinite(s["best_value"]):
                    ax.scatter([s[f"best_{p}"]], [100 * s["best_value"]], marker="*", s=120, color=colour, zorder=3)
            finished = t[t["state"].isin(["COMPLETE", "PRUNED", "FAIL"])].sort_values("number")
            so_far = finished["value"].fillna(-math.inf).cummax().replace(-math.inf, math.nan)
            row[-1].step(finished["number"], 100 * so_far, where="post", color=colour, label=label)
        for ax, p in zip(row, params, strict=False):
            dist = next((r[p] for r in ranges.values() if p in r), None)
            if dist is not None and dist.log:  # the searched range, with ticks a range within a decade still gets
                ax.set_xscale("log")
                ax.set_xlim(dist.low / 1.15, dist.high * 1.15)
                ticks = np.geomspace(dist.low, dist.high, 4)
                ax.set_xticks(ticks, labels=[f"{v:.2g}" for v in ticks])
                ax.minorticks_off()
            elif dist is not None:
                pad = 0.04 * (dist.high - dist.low)
                ax.set_xlim(dist.low - pad, dist.high + pad)
            ax.set_xlabel(SYMBOLS[p] if p != "alpha" else "α (1 = Emo-CLAP)")
        row[0].set_ylabel(f"{encoder}\nobjective: validation UAR (%)")
        row[-1].set_xlabel("trial")
        row[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        row[-1].set_ylabel("best so far (%)")
        for ax in row:
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7, loc="best")
    suptitle(fig, title + "\nfilled: complete trials; hollow: pruned (at the value they were cut); star: the best")
    fig.tight_layout()
    return fig


def front_figure(summary: pd.DataFrame, trials: pd.DataFrame, front: pd.DataFrame, title: str):
    """A panel per encoder: each complete trial's validation gap against its UAR, and each search's front."""
    encoders = list(dict.fromkeys(front["encoder"]))
    width = max(6.4, 4.4 * len(encoders))  # room for the title over one panel
    fig, axes = plt.subplots(1, len(encoders), figsize=(width, 4.2), dpi=110, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, encoder in zip(axes[0], encoders, strict=True):
        for i, (_, s) in enumerate(summary[summary["encoder"] == encoder].iterrows()):
            colour, label = colours[i % len(colours)], VARIANT_NAMES.get(s["variant"], s["variant"])
            done = trials[(trials["search"] == s["search"]) & (trials["state"] == "COMPLETE")]
            ax.scatter(100 * done["gap"], 100 * done["value"], s=16, color=colour, alpha=0.45, label=label)
            f = front[front["search"] == s["search"]].sort_values("gap")
            if len(f):
                ax.step(100 * f["gap"], 100 * f["value"], where="post", color=colour, lw=1.2)
                tested = f[f["test_uar_mean"].notna()]
                ax.scatter(100 * tested["gap"], 100 * tested["value"], marker="*", s=110, color=colour, zorder=3)
        ax.set_title(encoder, fontsize=9)
        ax.set_xlabel("validation gender gap |UAR_F − UAR_M| (points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel("validation UAR (%)")
    suptitle(fig, title + "\ndots: complete trials; line: the Pareto front; star: tested on the protocol folds")
    fig.tight_layout()
    return fig


def begun_or_raise(study: Study) -> tuple[str, dict[Target, list[FrozenTrial] | None]]:
    """The study's storage URL and its searches' trials (see ``begun_searches``); nothing is created.

    Raises:
        NoSearchError: no search of the study has begun.
    """
    begun = begun_searches(study)
    if begun is None:
        raise NoSearchError(
            f"study {study.name!r}: no search has begun (`gemo-bench search {study.path or study.name}` starts one)"
        )
    return begun


def write_search_report(
    tracker: Tracker, study: Study, out_root: Path, *, study_tags: Mapping[str, str] | None = None
) -> SearchReport:
    """Read the study's searches from their Optuna storage and the MLflow store; write ``search.md/.csv/.png``.

    Raises:
        NoSearchError: no search of the study has begun; nothing is written.
    """
    url, searches = begun_or_raise(study)
    # a search extended later may have tested more than one best: take the current best's
    best_runs = {
        (r.tags.get("gemo.search_id"), r.params.get("trial")): r for r in tracker.read_runs("search-best", "FINISHED")
    }
    rows, frames, fronts, ranges = [], [], [], {}
    for target, found in searches.items():
        if found is None:
            continue
        best = best_trial(found)
        sid = search_id(url, target)
        run = best_runs.get((sid, str(best.number))) if best is not None else None
        tested = run.metrics if run is not None else None
        rows.append(summarize_search(target, found, trial_budget(study, target), tested))
        frames.append(trial_frame(target, found))
        tested_front = {
            t.number: best_runs[(sid, str(t.number))].metrics for t in found if (sid, str(t.number)) in best_runs
        }
        fronts.append(front_frame(target, found, tested_front))
        ranges[target.study_name] = _distributions(found)
    summary = pd.DataFrame(rows)
    trials = pd.concat(frames, ignore_index=True)
    front = pd.concat([f for f in fronts if len(f)], ignore_index=True) if any(len(f) for f in fronts) else None
    sids = {search_id(url, t) for t, found in searches.items() if found is not None}
    runs = [r for r in tracker.read_runs("trial") if r.tags.get("gemo.search_id") in sids]
    source = describe_source(cell_frame(runs)) if runs else {"data": "unknown (no trial runs in the MLflow store)"}
    head = {
        "title": f"{study.name}: Optuna searches",
        **source,
        "generated": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
        + f" by gemo-bench {provenance.versions()['gemo-bench']}",
        "runs": f"{len(trials)} trials from {provenance.redact_uri(url)}; {len(runs)} trial runs in "
        f"{provenance.redact_uri(tracker.uri)}",
    }
    note_lines = notes(summary, ranges)
    out = ReportFolder(out_root, study.name)
    fig_title = f"{study.name} — {head['data']}" + (f"\n{head['weights']}" if "weights" in head else "")
    figs = [out.figure("search.png", figure(summary, trials, ranges, fig_title))]
    if front is not None:
        figs.append(out.figure("search_front.png", front_figure(summary, trials, front, fig_title)))
        out.csv("search_front.csv", front)
    md = out.text("search.md", markdown(summary, trials, head, note_lines, [f.name for f in figs], front))
    csv = out.csv("search.csv", summary)
    out.csv("search_trials.csv", trials)
    page = out.publish(tracker, study_tags)
    return SearchReport(out.path, md, csv, tuple(figs), page, summary, trials, tuple(note_lines), front)
