"""Label agreement report: is a gender gap the model's, or the ambiguity of the labels it is scored on?

IEMOCAP's consensus labels come from evaluators who do not always agree: an utterance all of them named the
same class is a clearer case than one two of three did. If one gender's test utterances are more often of the
second kind, every model looks worse on that gender for reasons that lie in the labels. Each fold run's
``predictions.csv`` carries each test utterance's agreement (``k/n``: k of the n evaluators named its class,
:attr:`benchmark.data.records.Utterance.agreement`), and this report uses it.

Per configuration, on its test predictions pooled over folds (and seeds):

- accuracy (WAR) on the *unanimous* utterances (every evaluator named the class) and on the *split* ones (the
  rest), per gender;
- the F−M WAR gap as measured (*raw*), and *at equal agreement*: the within-level gaps weighted by the share
  of each level among all test utterances (direct standardisation), i.e. the gap if both genders' utterances
  had the same mix of clear and ambiguous labels;
- their difference: the part of the raw gap that the genders' different agreement mix accounts for;
- accuracy on unanimous minus split utterances: what ambiguity costs the model.

Each comes with a 95 % percentile interval from resampling speakers within gender (the bias report's
bootstrap), and a verdict: *accounted for by agreement* (a raw gap whose interval excludes 0, and an
equal-agreement gap whose interval does not), *within agreement levels* (the equal-agreement gap's interval
excludes 0: the gap is there among equally clear utterances), or *no clear gap*.

The labels themselves: per gender, the utterances at each agreement level and the share unanimous, with the
F−M difference of that share. Only WAR is stratified: recall per class within one agreement level of one
gender rests on few utterances.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.records import GENDERS
from benchmark.reports import stats
from benchmark.reports.common import (
    Cells,
    NoRunsError,
    Predictions,
    ReportFolder,
    ci,
    error_bars,
    header,
    header_lines,
    load_cells,
    load_predictions,
    md_table,
    pct,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

LEVELS = ("unanimous", "split")
VERDICTS = ("accounted for by agreement", "within agreement levels", "no clear gap")


class NoAgreementError(NoRunsError):
    """A study whose predictions carry no label agreement."""


@dataclass(frozen=True)
class LevelCounts:
    """Test predictions of each configuration, counted per speaker and agreement level.

    Attributes:
        correct, total: ``[C, S, 2]`` correct and all predictions per configuration, speaker and level
            (unanimous, split); rows of unknown agreement are not counted.
        unknown: ``[C]`` predictions of unknown agreement.
        strata: the gender of each of the S speakers.
    """

    configs: tuple[str, ...]
    correct: np.ndarray
    total: np.ndarray
    unknown: np.ndarray
    strata: np.ndarray

    def of(self, config: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.configs.index(config)
        return self.correct[i], self.total[i]


def level_of(agreeing: np.ndarray, evaluators: np.ndarray) -> np.ndarray:
    """0 unanimous (every evaluator named the class), 1 split, −1 unknown (no evaluators)."""
    return np.where(evaluators == 0, -1, np.where(agreeing == evaluators, 0, 1))


def count_levels(cells: Cells, preds: Predictions, configs: Sequence[str]) -> LevelCounts:
    """Count every configuration's pooled test predictions by speaker and agreement level, in one pass."""
    group = {run_id: i for i, c in enumerate(configs) for run_id, _, _ in cells.members(c)}
    run_group = np.array([group.get(r, -1) for r in preds.run_ids], dtype=int)
    g = run_group[preds.run] if len(preds.run) else np.array([], dtype=int)
    level = level_of(preds.agreeing, preds.evaluators)
    keep, n_c, n_s = (g >= 0) & (level >= 0), len(configs), len(preds.speakers)
    flat = (g[keep] * n_s + preds.speaker[keep]) * 2 + level[keep]
    size = n_c * n_s * 2
    total = np.bincount(flat, minlength=size).reshape(n_c, n_s, 2).astype(float)
    right = (preds.y_true == preds.y_pred)[keep]
    correct = np.bincount(flat, weights=right, minlength=size).reshape(n_c, n_s, 2)
    unknown = np.bincount(g[(g >= 0) & (level < 0)], minlength=n_c)
    return LevelCounts(tuple(configs), correct, total, unknown, preds.speaker_gender)


# ---- statistics under speaker weights ------------------------------------------------------------------------


def _accuracy(w: np.ndarray, correct: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``[B]`` pooled accuracy of the speakers' ``correct`` / ``total`` (``[S]``) under weights ``[B, S]``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ correct) / (w @ total)


def gap_statistics(correct: np.ndarray, total: np.ndarray, female: np.ndarray) -> dict:
    """The report's statistics of one configuration, each a function of ``[B, S]`` speaker weights.

    ``correct``/``total`` are ``[S, 2]`` (unanimous, split); the equal-agreement weights are the levels'
    shares among all counted utterances, held fixed under resampling.
    """
    share = total.sum(axis=0) / total.sum()
    masks = {"F": female.astype(float), "M": (~female).astype(float)}

    def acc(w, gender=None, level=None):
        m = masks[gender] if gender else np.ones(len(female))
        c = correct.sum(axis=1) if level is None else correct[:, level]
        t = total.sum(axis=1) if level is None else total[:, level]
        return _accuracy(w, m * c, m * t)

    def raw(w):
        return acc(w, "F") - acc(w, "M")

    def adjusted(w):
        return sum(share[j] * (acc(w, "F", j) - acc(w, "M", j)) for j in range(2))

    return {
        "gap_raw": raw,
        "gap_adjusted": adjusted,
        "gap_explained": lambda w: raw(w) - adjusted(w),
        "ambiguity_cost": lambda w: acc(w, level=0) - acc(w, level=1),
    }


def verdict(raw: stats.Interval, adjusted: stats.Interval) -> str:
    if adjusted.excludes_zero():
        return VERDICTS[1]
    return VERDICTS[0] if raw.excludes_zero() else VERDICTS[2]


def config_table(summary: pd.DataFrame, counts: LevelCounts, n_boot: int, seed: int) -> pd.DataFrame:
    """One row per configuration with counted predictions: accuracies per level and gender, the gaps."""
    female = counts.strata == "F"
    rows = []
    for config in counts.configs:
        correct, total = counts.of(config)
        if not total.sum():
            continue
        row: dict[str, object] = {
            "config": config,
            "n": int(total.sum()),
            "n_unknown": int(counts.unknown[counts.configs.index(config)]),
        }
        for g, m in (("F", female), ("M", ~female)):
            row[f"unanimous_share_{g}"] = total[m, 0].sum() / total[m].sum()
            for j, level in enumerate(LEVELS):
                row[f"war_{level}_{g}"] = correct[m, j].sum() / total[m, j].sum() if total[m, j].sum() else np.nan
        ivs = {
            name: stats.cluster_bootstrap(f, counts.strata, n_boot=n_boot, seed=seed)
            for name, f in gap_statistics(correct, total, female).items()
        }
        for name, iv in ivs.items():
            row |= {name: iv.estimate, f"{name}_low": iv.low, f"{name}_high": iv.high}
        row["verdict"] = verdict(ivs["gap_raw"], ivs["gap_adjusted"])
        rows.append(row)
    keep = summary[["config", "encoder", "variant", "alpha", "label"]]
    return keep.merge(pd.DataFrame(rows), on="config", how="inner")


def label_table(cells: Cells, preds: Predictions, counts: LevelCounts, config: str, n_boot: int, seed: int) -> dict:
    """The test labels' agreement per gender, from one configuration's runs of one seed (each utterance once).

    Returns:
        ``{"config", "seed", "levels": {gender: Counter of "k/n"}, "n": {gender: n}, "unanimous": {gender: share},
        "mean_agreement": {gender: mean k/n}, "difference": Interval of the F−M unanimous share}``.
    """
    members = cells.members(config)
    first_seed = min(s for _, _, s in members)
    runs = {r for r, _, s in members if s == first_seed}
    index = np.array([r in runs for r in preds.run_ids])
    rows = index[preds.run] & (preds.evaluators > 0)
    gender = preds.gender[rows]
    k, n = preds.agreeing[rows], preds.evaluators[rows]
    out: dict = {"config": config, "seed": first_seed, "levels": {}, "n": {}, "unanimous": {}, "mean_agreement": {}}
    for g in GENDERS:
        m = gender == g
        out["levels"][g] = Counter(f"{a}/{b}" for a, b in zip(k[m], n[m], strict=True))
        out["n"][g] = int(m.sum())
        out["unanimous"][g] = float((k[m] == n[m]).mean()) if m.any() else np.nan
        out["mean_agreement"][g] = float((k[m] / n[m]).mean()) if m.any() else np.nan
    unanimous = np.bincount(preds.speaker[rows], weights=k == n, minlength=len(preds.speakers))
    total = np.bincount(preds.speaker[rows], minlength=len(preds.speakers)).astype(float)
    female = counts.strata == "F"

    def difference(w):
        return _accuracy(w, female * unanimous, female * total) - _accuracy(w, ~female * unanimous, ~female * total)

    out["difference"] = stats.cluster_bootstrap(difference, counts.strata, n_boot=n_boot, seed=seed)
    return out


# ---- the report ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    frame: pd.DataFrame
    labels: dict


def write_agreement_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> AgreementReport:
    """Read the study's fold runs and predictions (bulk) and write ``agreement.md/.csv/.png``.

    Raises:
        NoAgreementError: no prediction carries label agreement (a corpus without evaluators' votes, or runs
            logged before predictions had the column); nothing is written.
    """
    cells = load_cells(tracker, study_name, encoders)
    preds = load_predictions(tracker, cells.runs.values())
    if not (preds.evaluators > 0).any():
        raise NoAgreementError(
            f"study {study_name!r}: none of the test predictions of its {len(cells.frame)} finished fold runs carry "
            "label agreement (the agreement column of predictions.csv): the corpus has no evaluators' votes "
            "(only IEMOCAP and the embedded corpus do), or the runs were logged before the column existed"
        )
    summary = cells.summary(["test_war"])
    counts = count_levels(cells, preds, list(summary["config"]))
    frame = config_table(summary, counts, n_boot, seed)
    # the labels from the configuration with the most counted predictions (every one sees the same test sets)
    busiest = str(frame.sort_values("n", ascending=False, kind="stable")["config"].iloc[0])
    labels = label_table(cells, preds, counts, busiest, n_boot, seed)
    head = header(cells, tracker, f"{study_name}: label agreement — the F−M gap at equal label ambiguity")
    out = ReportFolder(out_root, study_name)
    names = dict(zip(frame["config"], frame["encoder"] + ": " + frame["label"], strict=True))
    fig = out.figure(
        "agreement.png",
        figure(frame, [names[c] for c in frame["config"]], f"{study_name} — {head['data']}\n{head['weights']}"),
    )
    md = out.text("agreement.md", markdown(frame, labels, names, head, n_boot, seed, len(preds.missing), [fig.name]))
    csv = out.csv("agreement.csv", frame)
    page = out.publish(tracker, study_tags)
    return AgreementReport(out.path, md, csv, (fig,), page, frame, labels)


def figure(frame: pd.DataFrame, names: Sequence[str], title: str):
    """Left: WAR per gender on unanimous and split utterances. Right: the raw and equal-agreement F−M gaps."""
    n = len(frame)
    fig, axes = plt.subplots(1, 2, figsize=(11, 2.2 + 0.33 * n), dpi=80, sharey=True, layout="constrained")
    y = np.arange(n)[::-1]
    style = {"F": ("tab:red", 0.12), "M": ("tab:blue", -0.12)}
    for g, (color, dy) in style.items():
        for level, marker in zip(LEVELS, ("o", "s"), strict=True):
            filled = color if level == "unanimous" else "none"
            axes[0].plot(
                100 * frame[f"war_{level}_{g}"], y + dy, marker, color=color, mfc=filled, label=f"{g}, {level}"
            )
    axes[0].set_xlabel("WAR (%)")
    axes[0].set_title("WAR per gender (filled: unanimous labels, hollow: split)", fontsize=9)
    for name, marker, dy, color in (("gap_raw", "o", 0.12, "tab:purple"), ("gap_adjusted", "D", -0.12, "tab:green")):
        est = frame[name].to_numpy(dtype=float)
        err = 100 * error_bars(est, frame[f"{name}_low"], frame[f"{name}_high"])
        label = "as measured" if name == "gap_raw" else "at equal agreement"
        axes[1].errorbar(100 * est, y + dy, xerr=err, fmt=marker, capsize=3, color=color, label=label)
    axes[1].axvline(0, color="black", lw=0.8)
    axes[1].set_xlabel("WAR female − male (percentage points)")
    axes[1].set_title("F−M gap with 95 % speaker CI", fontsize=9)
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncol=6, fontsize=7)
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].set_ylim(-0.7, n - 0.3)
    suptitle(fig, title)
    return fig


def markdown(
    frame: pd.DataFrame,
    labels: dict,
    names: Mapping[str, str],
    head: Mapping[str, str],
    n_boot: int,
    seed: int,
    missing: int,
    figures: Sequence[str],
) -> str:
    lines = header_lines(head)
    n_all = sum(labels["n"].values())
    levels = sorted({lv for g in GENDERS for lv in labels["levels"][g]}, key=lambda s: tuple(map(int, s.split("/"))))
    d = labels["difference"]
    lines += [
        "## The test labels",
        "",
        f"{n_all} test utterances with evaluators' votes (the runs of {names[labels['config']]}, seed "
        f"{labels['seed']}; every configuration is scored on the same ones). *k/n*: k of the n evaluators who "
        "rated the utterance named its class.",
        "",
        *md_table(
            ["gender", "utterances", "unanimous (%)", "mean agreement (%)", *levels],
            [
                [g, labels["n"][g], pct(labels["unanimous"][g]), pct(labels["mean_agreement"][g])]
                + [labels["levels"][g].get(lv, 0) for lv in levels]
                for g in GENDERS
            ],
        ),
        f"Unanimous share, female − male: {signed(d.estimate)} points, 95 % speaker CI {ci(d.low, d.high)}.",
        "",
        "## The F−M gap at equal label agreement",
        "",
        *md_table(
            [
                "configuration",
                "WAR unanimous F / M",
                "WAR split F / M",
                "F−M gap, as measured",
                "F−M gap at equal agreement",
                "part due to the agreement mix",
                "unanimous − split",
                "verdict",
            ],
            [
                [
                    names[r.config],
                    f"{pct(r.war_unanimous_F)} / {pct(r.war_unanimous_M)}",
                    f"{pct(r.war_split_F)} / {pct(r.war_split_M)}",
                    f"{signed(r.gap_raw)} {ci(r.gap_raw_low, r.gap_raw_high)}",
                    f"{signed(r.gap_adjusted)} {ci(r.gap_adjusted_low, r.gap_adjusted_high)}",
                    f"{signed(r.gap_explained)} {ci(r.gap_explained_low, r.gap_explained_high)}",
                    f"{signed(r.ambiguity_cost)} {ci(r.ambiguity_cost_low, r.ambiguity_cost_high)}",
                    r.verdict,
                ]
                for r in frame.itertuples()
            ],
        ),
        "WAR in %, gaps in percentage points with 95 % intervals from resampling speakers within gender "
        f"({n_boot} resamplings, seed {seed}), on test predictions pooled over folds and seeds. *At equal "
        "agreement*: the within-level F−M gaps weighted by each level's share of all test utterances, the gap "
        "if both genders' labels were as often unanimous. *Part due to the agreement mix*: as measured minus at "
        "equal agreement. *Unanimous − split*: what ambiguous labels cost the model, both genders together.",
        "",
        "*Accounted for by agreement*: a gap whose interval excludes 0 as measured but not at equal agreement. "
        "*Within agreement levels*: the gap at equal agreement excludes 0, so it is there among equally clear "
        "utterances. *No clear gap*: neither excludes 0. Only WAR is stratified: recall per class within one "
        "agreement level of one gender rests on few utterances.",
        "",
    ]
    unknown = int(frame["n_unknown"].sum())
    if unknown:
        lines += [f"*{unknown} predictions of unknown agreement (no evaluators' votes) are left out.*", ""]
    if missing:
        lines += [f"*{missing} fold run(s) have no predictions.csv and are left out.*", ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"
