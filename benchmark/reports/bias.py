"""Bias report: how each configuration treats female and male speakers.

Per configuration:

- WAR/UAR per gender, mean ± std over folds (from the logged ``test_*_F/M`` metrics), and the F−M gap;
- the F−M gap on all test predictions pooled over folds, with a 95 % cluster-bootstrap interval (speakers
  resampled within gender);
- per-gender confusion matrices and recall per emotion × gender (pooled predictions);
- fairlearn: a ``MetricFrame`` by gender (WAR, UAR, their between-group difference) and the equalized-odds
  difference of each emotion one-vs-rest (the larger of the between-gender differences in true- and
  false-positive rate, as ``fairlearn.metrics.equalized_odds_difference`` defines it);
- for each gender-aware configuration, whether it narrows or widens |F−M UAR gap| relative to Emo-CLAP of
  the same encoder, with a paired speaker-bootstrap interval of the change;
- per speaker: WAR and UAR on the speaker's test utterances (pooled over folds and seeds), and per
  configuration the spread of speaker UAR within each gender against the F−M gap of the speaker means.
  With IEMOCAP's 5 speakers per gender, a gap smaller than the spread within a gender says that which
  speaker it is moves the figure more than which gender.

fairlearn runs once for the whole study: one ``MetricFrame`` with the configuration as control feature,
over the distinct (configuration, gender, true, predicted) combinations weighted by their counts, so the
cost does not grow with the number of utterances. Its metrics are small weighted NumPy functions with
fairlearn's definitions (sklearn's and fairlearn's own rate functions cost milliseconds per group, which
adds up to seconds on a large study); a test checks the result against
``fairlearn.metrics.equalized_odds_difference`` on the raw predictions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from benchmark.data.records import CLASS_WORDS, CLASSES, GENDERS
from benchmark.reports import stats
from benchmark.reports.ablation import RunConfusions, read_study
from benchmark.reports.common import (
    Cells,
    ReportFolder,
    class_names,
    error_bars,
    header,
    header_lines,
    md_table,
    pct,
    pm,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

GENDER_METRICS = ("test_war_F", "test_war_M", "test_uar_F", "test_uar_M")
ANNOTATE_ROWS = 24  # heatmaps with more configurations are drawn without numbers in the cells


# ---- fairlearn ------------------------------------------------------------------------------------------


def weighted_war(y_true, y_pred, sample_weight) -> float:
    """WAR (accuracy) of weighted rows."""
    w = np.asarray(sample_weight, dtype=float)
    return float(w[np.asarray(y_true) == np.asarray(y_pred)].sum() / w.sum())


def weighted_uar(y_true, y_pred, sample_weight) -> float:
    """UAR as :func:`benchmark.metrics.uar` defines it (mean recall over the classes present), weighted rows."""
    yt, yp, w = np.asarray(y_true), np.asarray(y_pred), np.asarray(sample_weight, dtype=float)
    return float(np.mean([w[(yt == k) & (yp == k)].sum() / w[yt == k].sum() for k in np.unique(yt)]))


def one_vs_rest_rate(y_true, y_pred, sample_weight, *, cls: int, positives: bool) -> float:
    """True-positive rate (``positives``) or false-positive rate of class ``cls`` against the rest, weighted."""
    yt, yp, w = np.asarray(y_true) == cls, np.asarray(y_pred) == cls, np.asarray(sample_weight, dtype=float)
    actual = yt if positives else ~yt
    total = w[actual].sum()
    return float(w[actual & yp].sum() / total) if total else math.nan


def weighted_rows(confusions: np.ndarray, configs: Sequence[str]) -> pd.DataFrame:
    """Distinct (config, gender, true, predicted) rows with counts, from ``[C, G, K, K]`` confusions."""
    c, g, t, p = np.nonzero(confusions)
    return pd.DataFrame(
        {
            "config": np.asarray(configs)[c],
            "gender": np.asarray(GENDERS)[g],
            "y_true": t,
            "y_pred": p,
            "weight": confusions[c, g, t, p],
        }
    )


def fairness_frame(rows: pd.DataFrame) -> MetricFrame:
    """One fairlearn ``MetricFrame``: WAR, UAR and one-vs-rest TPR/FPR per emotion, by gender, per config."""
    metrics = {"WAR": weighted_war, "UAR": weighted_uar}
    for k, code in enumerate(CLASSES):
        metrics[f"TPR {code}"] = functools.partial(one_vs_rest_rate, cls=k, positives=True)
        metrics[f"FPR {code}"] = functools.partial(one_vs_rest_rate, cls=k, positives=False)
    weight = rows["weight"].to_numpy()
    return MetricFrame(
        metrics=metrics,
        y_true=rows["y_true"].to_numpy(),
        y_pred=rows["y_pred"].to_numpy(),
        sensitive_features=rows["gender"].rename("gender"),
        control_features=rows["config"].rename("config"),
        sample_params={name: {"sample_weight": weight} for name in metrics},
    )


def equalized_odds(frame: MetricFrame) -> pd.DataFrame:
    """Equalized-odds difference per config (rows) and emotion (columns): max(|ΔTPR|, |ΔFPR|) between genders."""
    diff = frame.difference(method="between_groups")
    return pd.DataFrame({code: np.maximum(diff[f"TPR {code}"], diff[f"FPR {code}"]) for code in CLASSES})


# ---- gaps ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapChange:
    """A gender-aware configuration's |F−M gap| against Emo-CLAP's (negative change = narrower)."""

    config: str
    baseline: str
    metric: str
    gap: stats.Interval
    baseline_gap: stats.Interval
    change: stats.Interval  # |gap| − |baseline gap|, paired bootstrap

    @property
    def verdict(self) -> str:
        if not math.isfinite(self.change.estimate):
            return "no verdict"
        way = "narrows" if self.change.estimate < 0 else "widens"
        if not math.isfinite(self.change.low):
            return way
        return way + (
            " (interval excludes 0)" if self.change.excludes_zero() else " (within noise: interval includes 0)"
        )


def _gap_stat(counts: np.ndarray, female: np.ndarray, metric: str):
    f = stats.METRICS[metric]
    return lambda w: f(stats.pooled(counts, w, female)) - f(stats.pooled(counts, w, ~female))


def gap_interval(counts: np.ndarray, strata: np.ndarray, metric: str, n_boot: int, seed: int) -> stats.Interval:
    """F−M gap of ``metric`` on pooled predictions with a speaker-bootstrap interval (within gender)."""
    return stats.cluster_bootstrap(_gap_stat(counts, strata == "F", metric), strata, n_boot=n_boot, seed=seed)


def gap_change(
    counts: np.ndarray, base: np.ndarray, strata: np.ndarray, metric: str, n_boot: int, seed: int
) -> stats.Interval:
    """|gap| of ``counts`` minus |gap| of ``base``, with the same resampled speakers for both."""
    a, b = _gap_stat(counts, strata == "F", metric), _gap_stat(base, strata == "F", metric)
    return stats.cluster_bootstrap(lambda w: np.abs(a(w)) - np.abs(b(w)), strata, n_boot=n_boot, seed=seed)


# ---- the report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BiasReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    frame: pd.DataFrame
    changes: tuple[GapChange, ...]


def _shown(summary: pd.DataFrame, limit: int = 4) -> list[str]:
    """Configurations drawn as confusion matrices: all of an encoder's if few, else Emo-CLAP + each variant's best α."""
    out = []
    for _, rows in summary.groupby("encoder", sort=False):
        if len(rows) <= limit:
            out += list(rows["config"])
            continue
        for _, vrows in rows.groupby("variant", sort=False):
            out.append(vrows.sort_values("test_uar_mean", ascending=False).iloc[0]["config"])
    return out


def confusion_figure(encoder: str, configs: Sequence[str], labels: Mapping[str, str], by_gender, title: str):
    """Per-gender confusion matrices (rows: configurations; columns: female, male), counts and row shares."""
    names = class_names()
    fig, axes = plt.subplots(
        len(configs), 2, figsize=(7.4, 3.1 * len(configs) + 0.9), dpi=80, squeeze=False, layout="constrained"
    )
    for i, config in enumerate(configs):
        for j, g in enumerate(GENDERS):
            ax = axes[i, j]
            cm = by_gender[config][j]
            share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            for r in range(len(names)):
                for c in range(len(names)):
                    color = "white" if share[r, c] > 0.6 else "black"
                    ax.text(
                        c, r, f"{int(cm[r, c])}\n{share[r, c]:.0%}", ha="center", va="center", fontsize=7, color=color
                    )
            ax.set_xticks(range(len(names)), names, fontsize=8)
            ax.set_yticks(range(len(names)), names, fontsize=8)
            ax.set_xlabel("predicted emotion", fontsize=8)
            ax.set_ylabel("true emotion", fontsize=8)
            who = "female" if g == "F" else "male"
            ax.set_title(f"{labels[config]}: {who} speakers\n(counts, share of true class)", fontsize=8)
    suptitle(fig, f"{encoder}: per-gender confusion matrices, test predictions pooled over folds\n{title}")
    return fig


def heatmap_figure(recall: pd.DataFrame, eod: pd.DataFrame, labels: Sequence[str], title: str):
    """Recall per emotion × gender (%), and equalized-odds difference per emotion (points), one row per config."""
    n = len(labels)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(12, 1.9 + 0.34 * n), dpi=80, gridspec_kw={"width_ratios": [2, 1]}, layout="constrained"
    )
    annotate = n <= ANNOTATE_ROWS  # beyond that the numbers are unreadable anyway: they are in bias.md/.csv
    im = ax1.imshow(100 * recall.to_numpy(), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (r, c), v in np.ndenumerate(100 * recall.to_numpy()):
        if annotate and math.isfinite(v):
            ax1.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    ax1.set_xticks(range(recall.shape[1]), [f"{CLASS_WORDS[e]}\n{g}" for e, g in recall.columns], fontsize=8)
    ax1.set_yticks(range(n), labels, fontsize=7)
    ax1.set_xlabel("true emotion, speaker gender (F female, M male)")
    ax1.set_title("recall per emotion × gender (%)", fontsize=9)
    fig.colorbar(im, ax=ax1, label="recall (%)", fraction=0.04)
    values = 100 * eod.to_numpy(dtype=float)
    top = max(10.0, float(np.nanmax(values))) if np.isfinite(values).any() else 10.0
    im2 = ax2.imshow(values, cmap="Reds", vmin=0, vmax=top, aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        if annotate and math.isfinite(v):
            ax2.text(
                c, r, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 * top else "black"
            )
    ax2.set_xticks(range(eod.shape[1]), [CLASS_WORDS[e] for e in eod.columns], fontsize=8)
    ax2.set_yticks(range(n), [""] * n)
    ax2.set_xlabel("emotion (one-vs-rest)")
    ax2.set_title("equalized-odds difference\nbetween genders (points)", fontsize=9)
    fig.colorbar(im2, ax=ax2, label="max(|ΔTPR|, |ΔFPR|) (points)", fraction=0.08)
    suptitle(fig, title)
    return fig


def gap_figure(frame: pd.DataFrame, labels: Sequence[str], title: str):
    """F−M gap in UAR and WAR per configuration: pooled estimate with 95 % speaker-bootstrap interval."""
    n = len(frame)
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.2 + 0.33 * n), dpi=80, sharey=True, layout="constrained")
    y = np.arange(n)[::-1]
    for ax, metric in zip(axes, ("uar", "war"), strict=True):
        est = 100 * frame[f"gap_{metric}"].to_numpy(dtype=float)
        err = 100 * error_bars(est / 100, frame[f"gap_{metric}_low"], frame[f"gap_{metric}_high"])
        ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, color="tab:purple")
        folds = 100 * frame[f"gap_{metric}_folds"].to_numpy(dtype=float)
        ax.plot(folds, y, "D", mfc="none", color="tab:purple", ms=6)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"{metric.upper()} female − male (percentage points)")
        ax.set_title(f"{metric.upper()} gap (● pooled, 95 % speaker CI; ◇ fold mean)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].set_ylim(-0.7, n - 0.3)
    suptitle(fig, title + "\n(right of 0: better for female speakers)")
    return fig


def gap_table(
    cells: Cells, rc: RunConfusions | None, summary: pd.DataFrame, n_boot: int, seed: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per configuration: fold-mean gaps, pooled gaps with intervals, recall per emotion x gender.

    Returns:
        The table (``summary`` plus gap and recall columns) and each configuration's ``[G, K, K]``
        per-gender confusion counts (configurations without predictions are absent).
    """
    folds = cells.per_fold(list(GENDER_METRICS))
    for metric in ("war", "uar"):
        folds[f"gap_{metric}"] = folds[f"test_{metric}_F"] - folds[f"test_{metric}_M"]
    gap_folds = folds.groupby("config", sort=False)[["gap_war", "gap_uar"]].agg(["mean", "std"])
    strata = rc.strata if rc is not None else np.array([])
    female = strata == "F"
    rows, by_gender = [], {}
    for config in summary["config"]:
        row: dict[str, object] = {"config": config}
        for metric in ("war", "uar"):
            row[f"gap_{metric}_folds"] = gap_folds.loc[config, (f"gap_{metric}", "mean")]
            row[f"gap_{metric}_folds_std"] = gap_folds.loc[config, (f"gap_{metric}", "std")]
        counts = rc.pooled(config) if rc is not None else None
        if counts is not None:
            by_gender[config] = np.stack([counts[female].sum(axis=0), counts[~female].sum(axis=0)])
            for metric in ("war", "uar"):
                iv = gap_interval(counts, strata, metric, n_boot, seed)
                row |= {f"gap_{metric}": iv.estimate, f"gap_{metric}_low": iv.low, f"gap_{metric}_high": iv.high}
            recall = stats.recalls_of(by_gender[config])  # [G, K]
            for k, code in enumerate(CLASSES):
                for j, g in enumerate(GENDERS):
                    row[f"recall_{code}_{g}"] = recall[j, k]
        rows.append(row)
    return summary.merge(pd.DataFrame(rows), on="config", how="left"), by_gender


def speaker_table(rc: RunConfusions, configs: Sequence[str]) -> pd.DataFrame:
    """One row per configuration and speaker: gender, test utterances (pooled over folds and seeds), WAR, UAR."""
    rows = []
    for config in configs:
        counts = rc.pooled(config)
        if counts is None:
            continue
        n, war, uar = counts.sum(axis=(1, 2)), stats.war_of(counts), stats.uar_of(counts)
        for s in np.flatnonzero(n):
            row = {"config": config, "speaker": rc.speakers[s], "gender": str(rc.strata[s]), "n": int(n[s])}
            rows.append(row | {"war": float(war[s]), "uar": float(uar[s])})
    return pd.DataFrame(rows, columns=["config", "speaker", "gender", "n", "war", "uar"])


def speaker_spread(speakers: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: speaker UAR per gender (count, mean, sample std), the gap of the means, the pooled
    within-gender std, and the speaker with the lowest UAR."""
    rows = []
    for config, g in speakers.groupby("config", sort=False):
        row: dict[str, object] = {"config": config}
        for gender in GENDERS:
            uar = g.loc[g["gender"] == gender, "uar"]
            row |= {
                f"speakers_{gender}": len(uar),
                f"speaker_uar_{gender}_mean": uar.mean() if len(uar) else math.nan,
                f"speaker_uar_{gender}_std": uar.std(ddof=1) if len(uar) > 1 else math.nan,
            }
        row["speaker_gap_uar"] = row["speaker_uar_F_mean"] - row["speaker_uar_M_mean"]
        nf, nm = row["speakers_F"], row["speakers_M"]
        if nf > 1 and nm > 1:
            pooled_var = ((nf - 1) * row["speaker_uar_F_std"] ** 2 + (nm - 1) * row["speaker_uar_M_std"] ** 2) / (
                nf + nm - 2
            )
            row["speaker_within_std"] = math.sqrt(pooled_var)
        else:
            row["speaker_within_std"] = math.nan
        low = g.loc[g["uar"].idxmin()]
        row |= {"lowest_speaker": low["speaker"], "lowest_speaker_uar": low["uar"]}
        rows.append(row)
    return pd.DataFrame(rows)


def speaker_note(frame: pd.DataFrame, labels: Mapping[str, str]) -> str | None:
    """One sentence on the configurations whose F−M gap of speaker means is smaller than the spread of
    speaker UAR within a gender (pooled std); None when there is none."""
    rows = frame[frame["speaker_within_std"].notna() & frame["speaker_gap_uar"].notna()]
    smaller = rows[rows["speaker_gap_uar"].abs() < rows["speaker_within_std"]]
    if smaller.empty:
        return None
    which = (
        " (" + "; ".join(labels[c] for c in smaller["config"]) + ")"
        if len(smaller) <= 4 and len(smaller) < len(rows)
        else ""
    )
    return (
        f"In {len(smaller)} of {len(rows)} configurations{which} the F−M gap of speaker means is smaller than the "
        "spread of speaker UAR within a gender (*gap of means* against *within std* below): there, which speaker "
        "it is moves the figure more than which gender."
    )


def speaker_figure(speakers: pd.DataFrame, configs: Sequence[str], labels: Mapping[str, str], title: str):
    """Each speaker's UAR per configuration, female and male side by side, with the gender means.

    Two scatter calls per gender, whatever the number of configurations: a figure of many artists costs
    seconds to draw on a large study.
    """
    n = len(configs)
    fig, ax = plt.subplots(figsize=(10, 2.2 + 0.33 * n), dpi=80, layout="constrained")
    row = {c: n - 1 - i for i, c in enumerate(configs)}
    shown = speakers[speakers["config"].isin(row)]
    y = shown["config"].map(row).to_numpy(dtype=float)
    means = shown.groupby(["config", "gender"], sort=False)["uar"].mean().reset_index()
    for gender, offset, colour, name in (("F", 0.12, "tab:red", "female"), ("M", -0.12, "tab:blue", "male")):
        mine = (shown["gender"] == gender).to_numpy()
        ax.scatter(
            100 * shown["uar"].to_numpy()[mine],
            y[mine] + offset,
            s=25,
            alpha=0.7,
            color=colour,
            label=f"{name} speakers",
        )
        m = means[means["gender"] == gender]
        ax.scatter(100 * m["uar"], m["config"].map(row) + offset, marker="|", s=220, linewidths=2.5, color=colour)
    ax.set_yticks(list(row.values()), [labels[c] for c in row], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("speaker UAR (%), pooled over folds and seeds; bars: the gender's mean")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    suptitle(fig, title)
    return fig


def fairness_table(by_gender: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """fairlearn columns per configuration (WAR/UAR by gender and their difference, EOD per emotion), and EOD."""
    mf = fairness_frame(weighted_rows(np.stack(list(by_gender.values())), list(by_gender)))
    eod = equalized_odds(mf)
    diff = mf.difference(method="between_groups")
    out = pd.DataFrame(index=pd.Index(list(by_gender), name="config"))
    for metric in ("WAR", "UAR"):
        for g in GENDERS:
            out[f"fairlearn_{metric.lower()}_{g}"] = mf.by_group[metric].xs(g, level="gender")
        out[f"fairlearn_{metric.lower()}_difference"] = diff[metric]
    for code in CLASSES:
        out[f"eod_{code}"] = eod[code]
    return out.reset_index(), eod


def gap_changes(cells: Cells, rc: RunConfusions, summary: pd.DataFrame, n_boot: int, seed: int) -> list[GapChange]:
    """Each gender-aware configuration's |gap| against its Emo-CLAP baseline's, on matched folds and seeds."""
    out = []
    for config in summary.loc[summary["variant"] != "emo-clap", "config"]:
        base = cells.baseline_of(config)
        if base is None:
            continue
        keys = cells.fold_seed_keys(config) & cells.fold_seed_keys(base)
        a, b = rc.pooled(config, keys), rc.pooled(base, keys)
        if a is None or b is None:
            continue
        for metric in ("uar", "war"):
            out.append(
                GapChange(
                    config,
                    base,
                    metric,
                    gap_interval(a, rc.strata, metric, n_boot, seed),
                    gap_interval(b, rc.strata, metric, n_boot, seed),
                    gap_change(a, b, rc.strata, metric, n_boot, seed),
                )
            )
    return out


def write_bias_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> BiasReport:
    """Read the study's fold runs and predictions (bulk) and write ``bias.md/.csv`` and its figures."""
    cells, preds, rc = read_study(tracker, study_name, encoders)
    summary = cells.summary(["test_war", "test_uar", *GENDER_METRICS])
    labels = dict(zip(summary["config"], summary["encoder"] + ": " + summary["label"], strict=True))
    frame, by_gender = gap_table(cells, rc, summary, n_boot, seed)
    eod = pd.DataFrame(columns=list(CLASSES), dtype=float)
    changes = []
    if by_gender:
        fair, eod = fairness_table(by_gender)
        frame = frame.merge(fair, on="config", how="left")
        changes = gap_changes(cells, rc, summary, n_boot, seed)
    speakers = speaker_table(rc, list(summary["config"])) if rc is not None else pd.DataFrame()
    if len(speakers):
        frame = frame.merge(speaker_spread(speakers), on="config", how="left")
    for metric in ("uar", "war"):
        by = {c.config: c for c in changes if c.metric == metric}
        frame[f"abs_gap_{metric}_change"] = [by[c].change.estimate if c in by else None for c in frame["config"]]
        frame[f"abs_gap_{metric}_change_low"] = [by[c].change.low if c in by else None for c in frame["config"]]
        frame[f"abs_gap_{metric}_change_high"] = [by[c].change.high if c in by else None for c in frame["config"]]
        frame[f"gap_{metric}_verdict"] = [by[c].verdict if c in by else None for c in frame["config"]]

    head = header(cells, tracker, f"{study_name}: gender bias — female vs male speakers")
    out = ReportFolder(out_root, study_name)
    title = f"{study_name} — {head['data']}\n{head['weights']}"
    figs = write_figures(out, frame, summary, by_gender, eod, labels, title)
    confusion_rows = [
        {"config": c, "gender": g, "true": CLASSES[t], "predicted": CLASSES[p], "count": int(m[j, t, p])}
        for c, m in by_gender.items()
        for j, g in enumerate(GENDERS)
        for t in range(len(CLASSES))
        for p in range(len(CLASSES))
    ]
    out.csv("bias_confusion.csv", pd.DataFrame(confusion_rows))
    if len(speakers):
        out.csv("bias_speakers.csv", speakers)
        shown = [c for c in summary["config"] if c in set(speakers["config"])]
        figs.append(out.figure("bias_speakers.png", speaker_figure(speakers, shown, labels, title)))
    text = markdown(frame, changes, labels, head, n_boot, seed, len(preds.missing), [p.name for p in figs])
    md = out.text("bias.md", text)
    csv = out.csv("bias.csv", frame)
    page = out.publish(tracker, study_tags)
    return BiasReport(out.path, md, csv, tuple(figs), page, frame, tuple(changes))


def write_figures(
    out: ReportFolder,
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    by_gender: Mapping[str, np.ndarray],
    eod: pd.DataFrame,
    labels: Mapping[str, str],
    title: str,
) -> list[Path]:
    """The gap plot, the recall / equalized-odds heatmap and one per-gender confusion figure per encoder."""
    with_preds = [c for c in summary["config"] if c in by_gender]
    if not with_preds:
        return []
    table = frame.set_index("config").loc[with_preds]
    names = [labels[c] for c in with_preds]
    figs = [out.figure("bias_gap.png", gap_figure(table, names, title))]
    recall = pd.DataFrame({(code, g): table[f"recall_{code}_{g}"] for code in CLASSES for g in GENDERS})
    figs.append(out.figure("bias_recall.png", heatmap_figure(recall, eod.loc[with_preds], names, title)))
    encoder_of = dict(zip(summary["config"], summary["encoder"], strict=True))
    short = dict(zip(summary["config"], summary["label"], strict=True))
    shown = [c for c in _shown(summary) if c in by_gender]
    for encoder in dict.fromkeys(encoder_of[c] for c in shown):
        mine = [c for c in shown if encoder_of[c] == encoder]
        name = f"bias_confusion_{_slug(encoder)}.png"
        figs.append(out.figure(name, confusion_figure(encoder, mine, short, by_gender, title)))
    return figs


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def markdown(
    frame: pd.DataFrame,
    changes: Sequence[GapChange],
    labels: Mapping[str, str],
    head: Mapping[str, str],
    n_boot: int,
    seed: int,
    missing: int,
    figures: Sequence[str],
) -> str:
    lines = header_lines(head)
    lines += [
        "Per gender: WAR and UAR in %, mean ± sample std over folds. *Gap* = female − male in percentage "
        "points: *folds* is the mean of the per-fold gaps; *pooled* is the gap on all test predictions "
        f"pooled over folds, with a 95 % interval from {n_boot} resamplings of speakers within gender "
        f"(seed {seed}). Right of 0 favours female speakers.",
        "",
    ]
    if missing:
        lines += [f"*{missing} fold run(s) have no predictions.csv and are left out of the pooled figures.*", ""]
    rows = []
    for _, r in frame.iterrows():
        rows.append(
            [
                labels[r["config"]],
                pm(r["test_war_F_mean"], r["test_war_F_std"]),
                pm(r["test_war_M_mean"], r["test_war_M_std"]),
                pm(r["test_uar_F_mean"], r["test_uar_F_std"]),
                pm(r["test_uar_M_mean"], r["test_uar_M_std"]),
                signed(r["gap_war_folds"]),
                signed(r["gap_uar_folds"]),
                _iv(r, "gap_war"),
                _iv(r, "gap_uar"),
            ]
        )
    cols = ["configuration", "WAR F", "WAR M", "UAR F", "UAR M", "gap WAR (folds)", "gap UAR (folds)"]
    lines += md_table([*cols, "gap WAR pooled [95 % CI]", "gap UAR pooled [95 % CI]"], rows)

    lines += ["## Gender-aware variants against Emo-CLAP", ""]
    if changes:
        lines += [
            "Change of |F−M gap| relative to Emo-CLAP of the same encoder (negative: the gap narrows), on "
            "pooled predictions, with a paired 95 % speaker-bootstrap interval.",
            "",
        ]
        for c in changes:
            lines.append(
                f"- {labels[c.config]}: {c.metric.upper()} gap {signed(c.gap.estimate)} vs Emo-CLAP "
                f"{signed(c.baseline_gap.estimate)}; |gap| {signed(c.change.estimate)} "
                f"[{signed(c.change.low)}, {signed(c.change.high)}] — **{c.verdict}**."
            )
        lines.append("")
    else:
        lines += ["No gender-aware configuration with an Emo-CLAP baseline and predictions to compare.", ""]

    if "fairlearn_uar_difference" in frame:
        lines += [
            "## Fairness metrics (fairlearn)",
            "",
            "`MetricFrame` by gender on pooled predictions: WAR and UAR per gender and their between-group "
            "difference; equalized-odds "
            "difference per emotion one-vs-rest = max(|ΔTPR|, |ΔFPR|) between genders (0 = equal odds), "
            "in points.",
            "",
        ]
        rows = []
        for _, r in frame.iterrows():
            if not isinstance(r.get("fairlearn_uar_F"), float) or not math.isfinite(r["fairlearn_uar_F"]):
                continue
            rows.append(
                [
                    labels[r["config"]],
                    pct(r["fairlearn_war_F"]),
                    pct(r["fairlearn_war_M"]),
                    pct(r["fairlearn_war_difference"]),
                    pct(r["fairlearn_uar_F"]),
                    pct(r["fairlearn_uar_M"]),
                    pct(r["fairlearn_uar_difference"]),
                    *[pct(r[f"eod_{code}"], 1) for code in CLASSES],
                ]
            )
        cols = ["configuration", "WAR F", "WAR M", "WAR diff", "UAR F", "UAR M", "UAR diff"]
        lines += md_table([*cols, *[f"EOD {CLASS_WORDS[c]}" for c in CLASSES]], rows)
        rows = []
        for _, r in frame.iterrows():
            if f"recall_{CLASSES[0]}_F" in r and isinstance(r[f"recall_{CLASSES[0]}_F"], float):
                rows.append([labels[r["config"]], *[pct(r[f"recall_{c}_{g}"], 1) for c in CLASSES for g in GENDERS]])
        lines += ["Recall per emotion × gender (%), pooled predictions:", ""]
        lines += md_table(["configuration", *[f"{CLASS_WORDS[c]} {g}" for c in CLASSES for g in GENDERS]], rows)
    if "speaker_within_std" in frame:
        lines += [
            "## Per speaker",
            "",
            "UAR on each speaker's test utterances (pooled over folds and seeds; `bias_speakers.csv` has every "
            "speaker's WAR and UAR): the speakers' mean ± sample std per gender, the F−M gap of those means, "
            "the pooled std of speakers within a gender, and the speaker with the lowest UAR, in %.",
            "",
        ]
        note = speaker_note(frame, labels)
        if note:
            lines += [f"- {note}", ""]
        rows = []
        for _, r in frame.iterrows():
            if not isinstance(r.get("lowest_speaker"), str):
                continue
            rows.append(
                [
                    labels[r["config"]],
                    f"{int(r['speakers_F'])}/{int(r['speakers_M'])}",
                    pm(r["speaker_uar_F_mean"], r["speaker_uar_F_std"]),
                    pm(r["speaker_uar_M_mean"], r["speaker_uar_M_std"]),
                    signed(r["speaker_gap_uar"]),
                    pct(r["speaker_within_std"]),
                    f"{r['lowest_speaker']} ({pct(r['lowest_speaker_uar'])})",
                ]
            )
        cols = ["configuration", "speakers F/M", "UAR F speakers", "UAR M speakers", "gap of means", "within std"]
        lines += md_table([*cols, "lowest speaker"], rows)
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _iv(r: pd.Series, key: str) -> str:
    est = r.get(key)
    if est is None or not isinstance(est, float) or not math.isfinite(est):
        return "–"
    return f"{signed(est)} [{signed(r[key + '_low'])}, {signed(r[key + '_high'])}]"
