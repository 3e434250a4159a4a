"""Ablation report: every variant and alpha against Emo-CLAP, per encoder, with significance.

For each encoder, every configuration's WAR/UAR (mean ± std over folds), and for each gender-aware
configuration its difference to the Emo-CLAP configuration of the same encoder (and the same value of any
other varying parameter, such as the temperature):

- over folds: the mean per-fold difference, a paired t-test and a Wilcoxon signed-rank test (matched folds);
- over speakers: the difference on all pooled test predictions with a 95 % cluster-bootstrap interval
  (speakers resampled within gender; both configurations see the same resampled speakers).

Per emotion, each gender-aware configuration's recall change against the same baseline, tested the same two
ways (each fold's recall; the pooled predictions' speaker bootstrap): which emotions gender-awareness moves.

A difference is called significant when the paired t-test gives p < 0.05 *and* the bootstrap interval
excludes 0; the sentences say which tests agree. p-values are not corrected for multiple comparisons; the
report gives the Bonferroni threshold for the number of comparisons it makes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.records import CLASS_WORDS, CLASSES
from benchmark.reports import stats
from benchmark.reports.common import (
    PARAM_NAMES,
    Cells,
    Predictions,
    ReportFolder,
    error_bars,
    header,
    header_lines,
    load_cells,
    load_predictions,
    md_table,
    pct,
    pm,
    pval,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.reports.table import VARIANT_NAMES
from benchmark.tracking import Tracker

METRICS = ("war", "uar")
ALPHA_LEVEL = 0.05


@dataclass(frozen=True)
class Comparison:
    """One configuration against its baseline on one metric."""

    config: str
    baseline: str
    metric: str
    test: stats.PairedTest
    boot: stats.Interval | None  # None without predictions of both

    @property
    def significant(self) -> bool:
        return bool(
            self.test.p_t is not None
            and self.test.p_t < ALPHA_LEVEL
            and self.boot is not None
            and self.boot.excludes_zero()
        )


def read_study(
    tracker: Tracker, study_name: str, encoders: Sequence[str] = ()
) -> tuple[Cells, Predictions, RunConfusions | None]:
    """A study's finished fold runs, their test predictions and per-run confusion counts, in bulk reads.

    The confusions are None when no run logged predictions (reports then say so and skip the bootstrap).
    """
    cells = load_cells(tracker, study_name, encoders)
    preds = load_predictions(tracker, cells.runs.values())
    return cells, preds, RunConfusions(cells, preds) if len(preds.run_ids) else None


class RunConfusions:
    """Per-run, per-speaker confusion counts of a study's predictions, for paired speaker bootstraps."""

    def __init__(self, cells: Cells, preds: Predictions) -> None:
        self.cells = cells
        index = {r: i for i, r in enumerate(preds.run_ids)}
        self.counts = preds.confusions(index, len(preds.run_ids))  # [R, S, K, K]
        self.run_index = index
        self.strata = preds.speaker_gender
        self.speakers = preds.speakers
        self.missing = preds.missing

    def pooled(self, config: str, keys: set[tuple[int, int]] | None = None) -> np.ndarray | None:
        """``[S, K, K]`` counts of ``config``'s runs (those whose (fold, seed) is in ``keys``, if given).

        None when none of them logged predictions.
        """
        idx = [
            self.run_index[run_id]
            for run_id, fold, seed in self.cells.members(config)
            if (keys is None or (fold, seed) in keys) and run_id in self.run_index
        ]
        return self.counts[idx].sum(axis=0) if idx else None


def compare(
    cells: Cells,
    confusions: RunConfusions | None,
    config: str,
    baseline: str,
    metric: str,
    *,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> Comparison:
    """Paired tests over matched folds and a paired speaker bootstrap of ``config − baseline``."""
    a, b = cells.fold_values(config, f"test_{metric}"), cells.fold_values(baseline, f"test_{metric}")
    common = sorted(set(a.index) & set(b.index))
    test = stats.paired_tests(a.loc[common].to_numpy(), b.loc[common].to_numpy())
    boot = None
    if confusions is not None:
        keys = cells.fold_seed_keys(config) & cells.fold_seed_keys(baseline)
        ca, cb = confusions.pooled(config, keys), confusions.pooled(baseline, keys)
        if ca is not None and cb is not None:
            f = stats.METRICS[metric]
            boot = stats.cluster_bootstrap(
                lambda w: f(stats.pooled(ca, w)) - f(stats.pooled(cb, w)), confusions.strata, n_boot=n_boot, seed=seed
            )
    return Comparison(config, baseline, metric, test, boot)


def all_comparisons(
    cells: Cells, confusions: RunConfusions | None, *, n_boot: int = stats.DEFAULT_BOOT, seed: int = stats.DEFAULT_SEED
) -> list[Comparison]:
    out = []
    for config in cells.configs().query("variant != 'emo-clap'")["config"]:
        base = cells.baseline_of(config)
        if base is None:
            continue
        for metric in METRICS:
            out.append(compare(cells, confusions, config, base, metric, n_boot=n_boot, seed=seed))
    return out


@dataclass(frozen=True)
class ClassGain:
    """One configuration against its baseline on one emotion's recall (which classes gender-awareness moves)."""

    config: str
    baseline: str
    emotion: str
    recall: float  # pooled over the matched fold runs' test predictions
    base_recall: float
    test: stats.PairedTest  # per-fold recalls, seeds averaged within a fold
    boot: stats.Interval

    @property
    def significant(self) -> bool:
        return bool(self.test.p_t is not None and self.test.p_t < ALPHA_LEVEL and self.boot.excludes_zero())


def class_gains(
    cells: Cells, confusions: RunConfusions, *, n_boot: int = stats.DEFAULT_BOOT, seed: int = stats.DEFAULT_SEED
) -> list[ClassGain]:
    """Per gender-aware configuration and emotion: recall minus its Emo-CLAP baseline's recall.

    Paired over matched folds (each fold's recall from its runs' confusion counts, seeds averaged) and over
    speakers (pooled predictions, the ablation's paired cluster bootstrap).
    """
    out = []
    per_run = stats.recalls_of(confusions.counts.sum(axis=1))  # [R, K]
    for config in cells.configs().query("variant != 'emo-clap'")["config"]:
        base = cells.baseline_of(config)
        if base is None:
            continue
        keys = cells.fold_seed_keys(config) & cells.fold_seed_keys(base)
        ca, cb = confusions.pooled(config, keys), confusions.pooled(base, keys)
        if ca is None or cb is None:
            continue
        fa, fb = (
            _fold_recalls(cells, confusions, config, keys, per_run),
            _fold_recalls(cells, confusions, base, keys, per_run),
        )
        common = sorted(set(fa.index) & set(fb.index))
        recall_a, recall_b = stats.recalls_of(ca.sum(axis=0)), stats.recalls_of(cb.sum(axis=0))
        for k, emotion in enumerate(CLASSES):
            a, b = fa.loc[common, k].to_numpy(), fb.loc[common, k].to_numpy()
            both = np.isfinite(a) & np.isfinite(b)  # a fold whose test set lacks the emotion has no recall
            test = stats.paired_tests(a[both], b[both])
            boot = stats.cluster_bootstrap(
                lambda w, k=k, ca=ca, cb=cb: (
                    stats.recalls_of(stats.pooled(ca, w))[:, k] - stats.recalls_of(stats.pooled(cb, w))[:, k]
                ),
                confusions.strata,
                n_boot=n_boot,
                seed=seed,
            )
            out.append(ClassGain(config, base, emotion, float(recall_a[k]), float(recall_b[k]), test, boot))
    return out


def _fold_recalls(
    cells: Cells, confusions: RunConfusions, config: str, keys: set[tuple[int, int]], per_run: np.ndarray
) -> pd.DataFrame:
    """``[fold, K]`` recalls of ``config``'s runs with predictions among ``keys``, seeds averaged within a fold."""
    rows = [
        (fold, *per_run[confusions.run_index[run_id]])
        for run_id, fold, seed in cells.members(config)
        if (fold, seed) in keys and run_id in confusions.run_index
    ]
    frame = pd.DataFrame(rows, columns=["fold", *range(len(CLASSES))])
    return frame.groupby("fold").mean()


def class_gain_frame(gains: Sequence[ClassGain], summary: pd.DataFrame) -> pd.DataFrame:
    info = summary.set_index("config")
    return pd.DataFrame(
        [
            {
                "encoder": info.loc[g.config, "encoder"],
                "configuration": info.loc[g.config, "label"],
                "baseline": info.loc[g.baseline, "label"],
                "emotion": g.emotion,
                "recall": g.recall,
                "baseline_recall": g.base_recall,
                "diff": g.recall - g.base_recall,
                "fold_diff": g.test.mean_diff,
                "n_pairs": g.test.n,
                "p_t": g.test.p_t,
                "p_wilcoxon": g.test.p_w,
                "boot_low": g.boot.low,
                "boot_high": g.boot.high,
                "significant": g.significant,
            }
            for g in gains
        ]
    )


# ---- text ----------------------------------------------------------------------------------------------


def sentence(c: Comparison, labels: Mapping[str, str]) -> str:
    """One sentence on one comparison, naming each test's verdict."""
    name = labels[c.config]
    m = c.metric.upper()
    t = c.test
    if t.n == 0:
        return f"{name}: no fold in common with Emo-CLAP, no comparison."
    text = f"{name}: {m} {signed(t.mean_diff)} points vs Emo-CLAP over {t.n} fold(s)"
    tests = []
    if t.p_t is not None:
        tests.append(f"paired t p = {pval(t.p_t)}")
    if t.p_w is not None:
        tests.append(f"Wilcoxon p = {pval(t.p_w)}")
    if c.boot is not None and math.isfinite(c.boot.low):
        tests.append(
            f"speaker bootstrap {signed(c.boot.estimate)} [{signed(c.boot.low)}, {signed(c.boot.high)}] "
            + ("excludes 0" if c.boot.excludes_zero() else "includes 0")
        )
    if tests:
        text += " (" + "; ".join(tests) + ")"
    if t.note:
        text += f"; {t.note}"
    if c.significant:
        verdict = "better" if t.mean_diff > 0 else "worse"
        text += f". **Significant**: {verdict} than Emo-CLAP."
    else:
        text += ". Not significant."
    return text


def markdown(
    summary: pd.DataFrame,
    comps: Sequence[Comparison],
    head: Mapping[str, str],
    n_boot: int,
    seed: int,
    missing: int,
    figures: Sequence[str],
    gains: Sequence[ClassGain] = (),
) -> str:
    labels = dict(zip(summary["config"], summary["label"], strict=True))
    lines = header_lines(head)
    n_tests = sum(1 for c in comps if c.test.p_t is not None)
    lines += [
        "WAR and UAR in %, mean ± sample std over folds (seeds averaged within a fold). Δ: the configuration "
        "minus Emo-CLAP of the same encoder, in percentage points, averaged over matched folds; tested over "
        "folds by a paired t-test (`scipy.stats.ttest_rel`) and a Wilcoxon signed-rank test "
        "(`scipy.stats.wilcoxon`). *Bootstrap*: the difference on all test predictions pooled over folds, with "
        f"a 95 % percentile interval from {n_boot} resamplings of speakers (n − 1 draws with replacement from "
        f"the n speakers of each gender; seed {seed}). **Significant** = paired t p < {ALPHA_LEVEL} and a bootstrap interval that excludes 0. "
        f"p-values are uncorrected: {n_tests} t-tests here, Bonferroni threshold {ALPHA_LEVEL / max(n_tests, 1):.4f}. "
        "With n folds a Wilcoxon p-value cannot fall below 2/2ⁿ (0.0625 with 5).",
        "",
    ]
    if missing:
        lines += [f"*{missing} fold run(s) have no predictions.csv and are left out of the bootstrap.*", ""]
    by_config: dict[str, list[Comparison]] = {}
    for c in comps:
        by_config.setdefault(c.config, []).append(c)
    for encoder, rows in summary.groupby("encoder", sort=False):
        lines += [f"## {encoder}", ""]
        table = []
        for _, r in rows.iterrows():
            cs = {c.metric: c for c in by_config.get(r["config"], [])}
            cells_ = [
                r["label"],
                pm(r["test_war_mean"], r["test_war_std"]),
                pm(r["test_uar_mean"], r["test_uar_std"]),
                int(r["folds"]),
            ]
            for m in METRICS:
                c = cs.get(m)
                if c is None:
                    cells_ += ["–"] * 4
                    continue
                boot = (
                    "–"
                    if c.boot is None
                    else f"{signed(c.boot.estimate)} [{signed(c.boot.low)}, {signed(c.boot.high)}]"
                )
                tw = f"{pval(c.test.p_t)} / {pval(c.test.p_w)}"
                cells_ += [signed(c.test.mean_diff), tw, boot, "**yes**" if c.significant else "no"]
            table.append(cells_)
        cols = ["configuration", "WAR", "UAR", "folds"]
        for m in METRICS:
            u = m.upper()
            cols += [f"Δ {u}", f"p t / Wilcoxon ({u})", f"bootstrap Δ {u} [95 % CI]", f"sig. {u}"]
        lines += md_table(cols, table)
        found = [sentence(c, labels) for c in comps if c.config in set(rows["config"])]
        if found:
            lines += ["Findings:", "", *[f"- {s}" for s in found], ""]
        if not (rows["variant"] == "emo-clap").any():
            lines += ["*No Emo-CLAP runs for this encoder: nothing to compare with.*", ""]
    if gains:
        lines += class_gain_lines(gains, summary)
    sig = [c for c in comps if c.significant]
    lines += ["## Summary", ""]
    if not comps and not (summary["variant"] != "emo-clap").any():
        lines += ["No gender-aware configuration has finished runs yet: nothing to compare.", ""]
    elif not comps:
        lines += ["No gender-aware configuration has an Emo-CLAP baseline to compare with.", ""]
    elif sig:
        encoder = dict(zip(summary["config"], summary["encoder"], strict=True))
        strict = ALPHA_LEVEL / max(n_tests, 1)
        lines += [f"{len(sig)} of {len(comps)} comparisons are significant:", ""]
        lines += [
            f"- {encoder[c.config]}: {labels[c.config]} ({c.metric.upper()} {signed(c.test.mean_diff)}, "
            f"paired t p = {pval(c.test.p_t)}"
            + ("; also below the Bonferroni threshold)" if c.test.p_t < strict else ")")
            for c in sig
        ] + [""]
    else:
        lines += [f"None of the {len(comps)} comparisons is significant.", ""]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def class_gain_lines(gains: Sequence[ClassGain], summary: pd.DataFrame) -> list[str]:
    """The *Per emotion* section: each configuration's recall change per emotion, and the significant ones."""
    info = summary.set_index("config")
    lines = [
        "## Per emotion",
        "",
        "Recall of each emotion, the configuration minus Emo-CLAP of the same encoder, in percentage points: "
        "the difference on the matched fold runs' pooled test predictions, with its 95 % speaker-bootstrap "
        "interval. † paired t p < 0.05 over folds (each fold's recall, seeds averaged); **bold**: significant "
        "(both). Which emotions a gender-aware variant helps or hurts.",
        "",
    ]
    by_config: dict[str, dict[str, ClassGain]] = {}
    for g in gains:
        by_config.setdefault(g.config, {})[g.emotion] = g
    for encoder in dict.fromkeys(info.loc[list(by_config), "encoder"]):
        lines += [f"### {encoder}", ""]
        table = []
        for config, row in by_config.items():
            if info.loc[config, "encoder"] != encoder:
                continue
            cells_ = [info.loc[config, "label"]]
            for emotion in CLASSES:
                g = row[emotion]
                text = f"{signed(g.recall - g.base_recall)} [{signed(g.boot.low)}, {signed(g.boot.high)}]"
                if g.test.p_t is not None and g.test.p_t < ALPHA_LEVEL:
                    text += " †"
                cells_.append(f"**{text}**" if g.significant else text)
            table.append(cells_)
        lines += md_table(["configuration", *(CLASS_WORDS[c] for c in CLASSES)], table)
    sig = [g for g in gains if g.significant]
    if sig:
        lines += [f"{len(sig)} of {len(gains)} per-emotion recall changes are significant:", ""]
        lines += [
            f"- {info.loc[g.config, 'encoder']}: {info.loc[g.config, 'label']}, {CLASS_WORDS[g.emotion]} "
            f"{signed(g.recall - g.base_recall)} points (recall {pct(g.recall)} vs {pct(g.base_recall)} %, "
            f"paired t p = {pval(g.test.p_t)})"
            for g in sig
        ] + [""]
    else:
        lines += [f"None of the {len(gains)} per-emotion recall changes is significant.", ""]
    return lines


# ---- figures -------------------------------------------------------------------------------------------


def alpha_figure(cells: Cells, summary: pd.DataFrame, title: str):
    """α-curves: UAR and WAR against α per encoder, one line per variant, Emo-CLAP as a band at α = 1.

    SL-GEmo-CLAP at α = 1 *is* Emo-CLAP, so each curve is joined (dashed) to the Emo-CLAP point at α = 1.
    """
    encoders = list(dict.fromkeys(summary["encoder"]))
    fig, axes = plt.subplots(
        2, len(encoders), figsize=(max(7.5, 4.2 * len(encoders)), 7.0), dpi=90, squeeze=False, layout="constrained"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, encoder in enumerate(encoders):
        sub = summary[summary["encoder"] == encoder]
        base = sub[sub["variant"] == "emo-clap"]
        for i, metric in enumerate(("uar", "war")):
            ax = axes[i, j]
            for m, (_, b) in enumerate(base.iterrows()):
                mean, std = 100 * b[f"test_{metric}_mean"], 100 * b[f"test_{metric}_std"]
                ax.axhspan(mean - std, mean + std, color="grey", alpha=0.15)
                ax.axhline(mean, color="grey", ls="--", lw=1.2)
                marker = "sD^v<>"[m % 6]  # one marker per Emo-CLAP setting (e.g. per temperature)
                ax.errorbar(
                    [1.0], [mean], yerr=[std], marker=marker, color="black", capsize=3, label=f"{b['label']} (± std)"
                )
            groups = sub[sub["variant"] != "emo-clap"].groupby(["variant", *cells.extras], sort=False)
            for k, (key, g) in enumerate(groups):
                key = key if isinstance(key, tuple) else (key,)
                g = g.sort_values("alpha")
                color = colors[k % len(colors)]
                extras = dict(zip(cells.extras, key[1:], strict=True))
                label = VARIANT_NAMES.get(key[0], key[0]) + "".join(
                    f" {PARAM_NAMES.get(x, x)}={v}" for x, v in extras.items()
                )
                x, mean = g["alpha"].to_numpy(), 100 * g[f"test_{metric}_mean"].to_numpy()
                ax.errorbar(
                    x, mean, yerr=100 * g[f"test_{metric}_std"], marker="o", capsize=3, color=color, label=label
                )
                same = base
                for name, value in extras.items():
                    if base[name].nunique() > 1:
                        same = same[same[name] == value]
                if len(same) == 1 and x.max() < 1:
                    ax.plot(
                        [x[-1], 1.0], [mean[-1], 100 * same.iloc[0][f"test_{metric}_mean"]], ls="--", color=color, lw=1
                    )
            ax.axhline(25, color="black", lw=0.6, ls=":", label="chance (4 classes)")
            ax.set_xlabel("α (weight of the emotion targets; 1 = Emo-CLAP)")
            ax.set_ylabel(f"{metric.upper()} (%), mean ± std over folds")
            ax.set_title(f"{encoder}: test {metric.upper()} against α", fontsize=10)
            ax.grid(alpha=0.3)
            ax.set_xlim(min(0.45, float(sub["alpha"].min()) - 0.05), 1.05)
        axes[0, j].legend(fontsize=7, loc="best")
    suptitle(fig, title)
    return fig


def forest_figure(comps: Sequence[Comparison], labels: Mapping[str, str], title: str):
    """Δ to Emo-CLAP with 95 % speaker-bootstrap intervals, one row per configuration, UAR and WAR panels."""
    configs = list(dict.fromkeys(c.config for c in comps))
    fig, axes = plt.subplots(
        1, 2, figsize=(10, 2.4 + 0.35 * len(configs)), dpi=90, sharey=True, squeeze=False, layout="constrained"
    )
    y = np.arange(len(configs))[::-1]
    for ax, metric in zip(axes[0], ("uar", "war"), strict=True):
        by = {c.config: c for c in comps if c.metric == metric}
        for yi, config in zip(y, configs, strict=True):
            c = by.get(config)
            if c is None:
                continue
            color = (
                "tab:green" if c.significant and c.test.mean_diff > 0 else ("tab:red" if c.significant else "tab:blue")
            )
            if c.boot is not None and math.isfinite(c.boot.low):
                ax.errorbar(
                    100 * c.boot.estimate,
                    yi,
                    xerr=100 * error_bars(c.boot.estimate, c.boot.low, c.boot.high),
                    fmt="o",
                    color=color,
                    capsize=3,
                )
            ax.plot(100 * c.test.mean_diff, yi, marker="D", mfc="none", color=color, ms=6)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"{metric.upper()} difference to Emo-CLAP (percentage points)")
        ax.set_title(f"{metric.upper()} (● pooled, 95 % speaker CI; ◇ fold mean)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, [labels[c] for c in configs], fontsize=8)
    axes[0, 0].set_ylim(-0.7, len(configs) - 0.3)
    suptitle(fig, title + "\n(green / red: significantly better / worse; blue: not significant)")
    return fig


# ---- entry point ---------------------------------------------------------------------------------------


def class_gain_figure(gains: Sequence[ClassGain], labels: Mapping[str, str], title: str):
    """Heat map: gender-aware configurations x emotions, the recall change against Emo-CLAP (* significant)."""
    configs = list(dict.fromkeys(g.config for g in gains))
    diff = np.full((len(configs), len(CLASSES)), np.nan)
    sig = np.zeros_like(diff, dtype=bool)
    for g in gains:
        i, k = configs.index(g.config), CLASSES.index(g.emotion)
        diff[i, k], sig[i, k] = 100 * (g.recall - g.base_recall), g.significant
    finite = diff[np.isfinite(diff)]
    limit = max(1.0, float(np.abs(finite).max()) if len(finite) else 1.0)
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.45 * len(configs)), dpi=110)
    image = ax.imshow(diff, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(configs)):
        for k in range(len(CLASSES)):
            if np.isfinite(diff[i, k]):
                dark = abs(diff[i, k]) > 0.6 * limit  # white on the deep ends of the colour map
                text = f"{diff[i, k]:+.1f}" + ("*" if sig[i, k] else "")
                ax.text(k, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(CLASSES)), [CLASS_WORDS[c] for c in CLASSES])
    ax.set_yticks(range(len(configs)), [labels[c] for c in configs], fontsize=8)
    fig.colorbar(image, ax=ax, label="recall − Emo-CLAP's (points)")
    suptitle(fig, f"Per-emotion recall change vs Emo-CLAP (* significant)\n{title}")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class AblationReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    summary: pd.DataFrame
    comparisons: tuple[Comparison, ...]
    class_gains: tuple[ClassGain, ...] = ()
    classes_csv: Path | None = None


def comparison_frame(summary: pd.DataFrame, comps: Sequence[Comparison]) -> pd.DataFrame:
    out = summary.copy()
    for metric in METRICS:
        by = {c.config: c for c in comps if c.metric == metric}
        cols = {
            "baseline": lambda c: c.baseline,
            "diff": lambda c: c.test.mean_diff,
            "n_pairs": lambda c: c.test.n,
            "t": lambda c: c.test.t,
            "p_t": lambda c: c.test.p_t,
            "wilcoxon_w": lambda c: c.test.w,
            "p_wilcoxon": lambda c: c.test.p_w,
            "test_note": lambda c: c.test.note,
            "boot_diff": lambda c: c.boot.estimate if c.boot else None,
            "boot_low": lambda c: c.boot.low if c.boot else None,
            "boot_high": lambda c: c.boot.high if c.boot else None,
            "significant": lambda c: c.significant,
        }
        for name, get in cols.items():
            if name == "baseline" and metric != METRICS[0]:
                continue
            col = "baseline" if name == "baseline" else f"{metric}_{name}"
            out[col] = [get(by[c]) if c in by else None for c in out["config"]]
    return out


def write_ablation_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> AblationReport:
    """Read the study's fold runs and predictions (bulk) and write ``ablation.md/.csv`` and its figures."""
    cells, preds, confusions = read_study(tracker, study_name, encoders)
    summary = cells.summary([f"test_{m}" for m in METRICS])
    comps = all_comparisons(cells, confusions, n_boot=n_boot, seed=seed)
    head = header(cells, tracker, f"{study_name}: ablation — gender-aware variants vs Emo-CLAP")
    folder = ReportFolder(out_root, study_name)
    labels = dict(zip(summary["config"], summary["label"], strict=True))
    subtitle = f"{study_name} — {head['data']}\n{head['weights']}"
    figs = [folder.figure("ablation_alpha.png", alpha_figure(cells, summary, subtitle))]
    gains = class_gains(cells, confusions, n_boot=n_boot, seed=seed) if confusions is not None else []
    labels_enc = {c: f"{summary.set_index('config').loc[c, 'encoder']}: {labels[c]}" for c in labels}
    if comps:
        figs.append(folder.figure("ablation_diff.png", forest_figure(comps, labels_enc, subtitle)))
    if gains:
        figs.append(folder.figure("ablation_classes.png", class_gain_figure(gains, labels_enc, subtitle)))
    text = markdown(summary, comps, head, n_boot, seed, len(preds.missing), [p.name for p in figs], gains)
    md = folder.text("ablation.md", text)
    csv = folder.csv("ablation.csv", comparison_frame(summary, comps))
    classes_csv = folder.csv("ablation_classes.csv", class_gain_frame(gains, summary)) if gains else None
    page = folder.publish(tracker, study_tags)
    return AblationReport(folder.path, md, csv, tuple(figs), page, summary, tuple(comps), tuple(gains), classes_csv)
