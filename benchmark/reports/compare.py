"""Reproduction report: do two runs of the same grid agree? (``gemo-bench report compare A B``)

Two studies, in one store or two, that ran the same configurations: another machine, GPU against CPU, bf16
against fp32, a new torch or transformers, a colleague's store against yours. For every configuration both
hold (same encoder, variant, alpha and varying parameters):

- WAR and UAR of each (mean ± std over folds), the difference A − B paired over matched folds (t-test and
  Wilcoxon), and, where the matched runs scored the same test utterances, the pooled difference with the
  ablation report's paired speaker bootstrap;
- on those shared utterances, how often the two predicted the same class, and Cohen's kappa between them
  (``sklearn.metrics.cohen_kappa_score``): 100 % means the two runs are the same model to the last decision;
- a verdict: identical predictions, agreement within noise, or a significant difference.

The report also lists every logged parameter and provenance tag whose values differ between the two (device,
package versions, commit, data fingerprint, precision, ...): what changed between the runs, as MLflow holds it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from benchmark.data.records import CLASSES, GENDERS
from benchmark.reports import stats
from benchmark.reports.ablation import ALPHA_LEVEL, METRICS
from benchmark.reports.common import (
    Cells,
    ReportFolder,
    header,
    header_lines,
    load_cells,
    md_table,
    pct,
    pm,
    pval,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

# run parameters that tell cells apart rather than describe how they ran
_CELL_KEYS = {"fold", "seed"}
# provenance tags worth comparing (the rest are run bookkeeping: ids, pids, hosts, names)
_TAG_PREFIXES = ("gemo.version.", "gemo.device", "gemo.git_sha", "gemo.git_dirty", "gemo.data_", "gemo.weights")


class ComparePairError(ValueError):
    """Two studies that cannot be compared (the same runs twice, or no configuration in common)."""


@dataclass(frozen=True)
class Agreement:
    """Predictions of the two runs of each matched (fold, seed) on the test utterances both scored."""

    utterances: int
    same: int
    kappa: float

    @property
    def rate(self) -> float:
        return self.same / self.utterances if self.utterances else math.nan


@dataclass(frozen=True)
class Reproduction:
    """One configuration held by both studies: its figures in each, their differences, and the agreement."""

    config: str
    encoder: str
    label: str
    folds: int  # matched folds
    figures: Mapping[str, tuple[float, float, float, float]]  # metric -> (mean A, std A, mean B, std B)
    tests: Mapping[str, stats.PairedTest]  # metric -> A − B over matched folds
    boots: Mapping[str, stats.Interval | None]  # metric -> pooled A − B on the shared utterances
    agreement: Agreement | None
    genders: Mapping[str, tuple[float, float, stats.PairedTest]] = field(default_factory=dict)  # UAR: A, B, A − B

    def significant(self, metric: str) -> bool:
        t, b = self.tests[metric], self.boots[metric]
        return bool(t.p_t is not None and t.p_t < ALPHA_LEVEL and b is not None and b.excludes_zero())

    @property
    def verdict(self) -> str:
        a = self.agreement
        if a is not None and a.utterances and a.same == a.utterances:
            return "identical predictions"
        differ = [m.upper() for m in METRICS if self.significant(m)]
        if differ:
            return f"differ significantly in {' and '.join(differ)}"
        if a is None:  # no shared predictions, so no bootstrap: the folds alone speak
            by_folds = [m.upper() for m in METRICS if (p := self.tests[m].p_t) is not None and p < ALPHA_LEVEL]
            if by_folds:
                return f"differ over folds in {' and '.join(by_folds)} (no shared predictions to confirm)"
        return "agree within noise"


def compare_studies(
    a: Cells,
    b: Cells,
    preds_a: Mapping[str, pd.DataFrame],
    preds_b: Mapping[str, pd.DataFrame],
    *,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> list[Reproduction]:
    """Every configuration of ``a`` that ``b`` also holds, compared (see the module's docstring)."""
    shared = [c for c in a.configs()["config"] if c in set(b.configs()["config"])]
    info = a.configs().set_index("config")
    out = []
    for config in shared:
        figures, tests, boots = {}, {}, {}
        for m in METRICS:
            fa, fb = a.fold_values(config, f"test_{m}"), b.fold_values(config, f"test_{m}")
            common = sorted(set(fa.index) & set(fb.index))
            tests[m] = stats.paired_tests(fa.loc[common].to_numpy(), fb.loc[common].to_numpy())
            figures[m] = (*_mean_std(fa), *_mean_std(fb))
        genders = {}
        for g in GENDERS:
            fa, fb = a.fold_values(config, f"test_uar_{g}"), b.fold_values(config, f"test_uar_{g}")
            common = sorted(set(fa.index) & set(fb.index))
            if common:
                test = stats.paired_tests(fa.loc[common].to_numpy(), fb.loc[common].to_numpy())
                genders[g] = (float(fa.loc[common].mean()), float(fb.loc[common].mean()), test)
        pairs = _matched_runs(a, b, config)
        merged = _merge(pairs, preds_a, preds_b)
        agreement = None
        if merged is not None and len(merged):
            same = int((merged["predicted_a"] == merged["predicted_b"]).sum())
            kappa = float(cohen_kappa_score(merged["predicted_a"], merged["predicted_b"], labels=list(CLASSES)))
            agreement = Agreement(len(merged), same, kappa)
            ca, cb, strata = _speaker_counts(merged)
            for m in METRICS:
                f = stats.METRICS[m]
                boots[m] = stats.cluster_bootstrap(
                    lambda w, f=f, ca=ca, cb=cb: f(stats.pooled(ca, w)) - f(stats.pooled(cb, w)),
                    strata,
                    n_boot=n_boot,
                    seed=seed,
                )
        else:
            boots = dict.fromkeys(METRICS)
        folds = len(set(fold for fold, _ in pairs)) if pairs else tests["uar"].n
        out.append(
            Reproduction(
                config,
                str(info.loc[config, "encoder"]),
                str(info.loc[config, "label"]),
                folds,
                figures,
                tests,
                boots,
                agreement,
                genders,
            )
        )
    return out


def _mean_std(values: pd.Series) -> tuple[float, float]:
    v = values.to_numpy(dtype=float)
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _matched_runs(a: Cells, b: Cells, config: str) -> dict[tuple[int, int], tuple[str, str]]:
    """``(fold, seed) -> (run id in a, run id in b)`` for the runs of ``config`` both studies hold."""
    left = {(fold, s): run for run, fold, s in a.members(config)}
    right = {(fold, s): run for run, fold, s in b.members(config)}
    return {k: (left[k], right[k]) for k in sorted(set(left) & set(right))}


def _merge(
    pairs: Mapping[tuple[int, int], tuple[str, str]],
    preds_a: Mapping[str, pd.DataFrame],
    preds_b: Mapping[str, pd.DataFrame],
) -> pd.DataFrame | None:
    """The matched runs' predictions side by side on the utterances both scored; None without predictions."""
    frames = []
    for ra, rb in pairs.values():
        if ra not in preds_a or rb not in preds_b:
            continue
        left = preds_a[ra][["id", "speaker", "gender", "emotion", "predicted"]]
        right = preds_b[rb][["id", "emotion", "predicted"]]
        both = left.merge(right, on="id", suffixes=("_a", "_b"))
        # the same utterance must carry the same label in both, or it is not the same test set
        frames.append(both[both["emotion_a"] == both["emotion_b"]])
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def _speaker_counts(merged: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[S, K, K]`` confusion counts of each side per speaker, and each speaker's gender (the strata)."""
    speakers = sorted(set(merged["speaker"]))
    s_index = {s: i for i, s in enumerate(speakers)}
    k_index = {c: i for i, c in enumerate(CLASSES)}
    s = merged["speaker"].map(s_index).to_numpy()
    t = merged["emotion_a"].map(k_index).to_numpy()
    counts = [
        stats.speaker_confusions(s, t, merged[side].map(k_index).to_numpy(), len(speakers), len(CLASSES))
        for side in ("predicted_a", "predicted_b")
    ]
    strata = merged.groupby("speaker")["gender"].first().loc[speakers].to_numpy()
    return counts[0], counts[1], strata


def differences(a: Cells, b: Cells) -> list[tuple[str, str, str]]:
    """``(key, values in a, values in b)`` of each run parameter and provenance tag whose values differ."""
    out = []
    params_a, params_b = _values(a, "params"), _values(b, "params")
    for key in sorted(set(params_a) | set(params_b)):
        if key in _CELL_KEYS:
            continue
        if params_a.get(key, set()) != params_b.get(key, set()):
            out.append((key, _show(params_a.get(key)), _show(params_b.get(key))))
    tags_a, tags_b = _values(a, "tags"), _values(b, "tags")
    for key in sorted(set(tags_a) | set(tags_b)):
        if not key.startswith(_TAG_PREFIXES):
            continue
        if tags_a.get(key, set()) != tags_b.get(key, set()):
            out.append((key, _show(tags_a.get(key)), _show(tags_b.get(key))))
    return out


def _values(cells: Cells, kind: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for run in cells.runs.values():
        for k, v in getattr(run, kind).items():
            out.setdefault(k, set()).add(str(v))
    return out


def _show(values: set[str] | None) -> str:
    if not values:
        return "–"
    shown = sorted(values)
    text = ", ".join(shown[:3]) + (f", … ({len(shown)} values)" if len(shown) > 3 else "")
    return text.replace("|", "\\|")


# ---- text ----------------------------------------------------------------------------------------------


def markdown(
    result: Sequence[Reproduction],
    names: tuple[str, str],
    heads: tuple[Mapping[str, str], Mapping[str, str]],
    diffs: Sequence[tuple[str, str, str]],
    only: tuple[Sequence[str], Sequence[str]],
    n_boot: int,
    seed: int,
    figures: Sequence[str],
) -> str:
    a, b = names
    lines = [f"# {a} vs {b}: do two runs of the same grid agree?", ""]
    for name, head in zip(names, heads, strict=True):
        lines += [f"**{name}**", ""]
        lines += [line for line in header_lines(head) if line.startswith("- ")] + [""]
    lines += [
        "WAR and UAR in %, mean ± sample std over folds (seeds averaged within a fold). Δ: "
        f"{a} − {b} in percentage points, over matched folds, with a paired t-test and a Wilcoxon signed-rank "
        "test. *Bootstrap*: the difference on the test utterances both runs of a matched fold scored, pooled, "
        f"with a 95 % interval from {n_boot} resamplings of speakers within gender (seed {seed}). *Same*: the "
        "share of those utterances both predicted alike; κ: Cohen's kappa between the two runs' predictions. "
        f"**Differ** = paired t p < {ALPHA_LEVEL} and a bootstrap interval that excludes 0.",
        "",
        "## What differs",
        "",
    ]
    if diffs:
        lines += md_table(["logged as", a, b], diffs)
    else:
        lines += ["No logged parameter or provenance tag differs between the two.", ""]
    for name, configs in zip(names, only, strict=True):
        if configs:
            lines += [f"Only in {name} (not compared): {', '.join(configs)}.", ""]
    lines += ["## Per configuration", ""]
    rows = []
    for r in result:
        row = [r.encoder, r.label, r.folds]
        for m in METRICS:
            mean_a, std_a, mean_b, std_b = r.figures[m]
            boot = r.boots[m]
            row += [
                pm(mean_a, std_a),
                pm(mean_b, std_b),
                f"{signed(r.tests[m].mean_diff)} (p {pval(r.tests[m].p_t)})",
                "–" if boot is None else f"{signed(boot.estimate)} [{signed(boot.low)}, {signed(boot.high)}]",
            ]
        ag = r.agreement
        row += ["–" if ag is None else f"{pct(ag.rate, 1)} %", "–" if ag is None else f"{ag.kappa:.3f}", r.verdict]
        rows.append(row)
    cols = ["encoder", "configuration", "folds"]
    for m in METRICS:
        u = m.upper()
        cols += [f"{u} {a}", f"{u} {b}", f"Δ {u}", f"bootstrap Δ {u} [95 %]"]
    lines += md_table([*cols, "same", "κ", "verdict"], rows)
    gender_rows = []
    for r in result:
        row = [r.encoder, r.label]
        for g in GENDERS:
            if g not in r.genders:
                row += ["–"] * 3
                continue
            mean_a, mean_b, t = r.genders[g]
            row += [pct(mean_a), pct(mean_b), f"{signed(t.mean_diff)} (p {pval(t.p_t)})"]
        gender_rows.append(row)
    if any(r.genders for r in result):
        lines += [
            "### Per gender",
            "",
            "Test UAR of each gender's utterances in %, mean over matched folds, and the difference A − B with "
            "a paired t-test over folds: a change that moves one gender and not the other shows here first.",
            "",
        ]
        cols = ["encoder", "configuration"]
        for g in GENDERS:
            cols += [f"UAR {g} {a}", f"UAR {g} {b}", f"Δ UAR {g}"]
        lines += md_table(cols, gender_rows)
    lines += ["## Summary", "", *summary_lines(result, names), ""]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def summary_lines(result: Sequence[Reproduction], names: tuple[str, str]) -> list[str]:
    if not result:
        return ["The two studies hold no configuration in common."]
    identical = sum(r.verdict == "identical predictions" for r in result)
    differ = [r for r in result if r.verdict.startswith("differ")]
    out = [
        f"{len(result) - len(differ)} of {len(result)} configurations agree ({identical} with identical "
        f"predictions); {len(differ)} {'differs' if len(differ) == 1 else 'differ'} significantly."
    ]
    agreements = [r.agreement for r in result if r.agreement is not None and r.agreement.utterances]
    if agreements:
        n = sum(x.utterances for x in agreements)
        same = sum(x.same for x in agreements)
        out.append(
            f"Over the {n:,} test predictions the matched runs share (all configurations), the two predicted the "
            f"same class for {pct(same / n, 1)} %."
        )
    else:
        out.append(
            f"No matched runs share test utterances with predictions, so {names[0]} and {names[1]} are "
            "compared over folds only."
        )
    moved = [
        f"{r.encoder}: {r.label}, {g} {signed(t.mean_diff)} (p {pval(t.p_t)})"
        for r in result
        for g, (_, _, t) in r.genders.items()
        if t.p_t is not None and t.p_t < ALPHA_LEVEL
    ]
    if moved:
        out.append(f"Per-gender UAR moved (paired t p < {ALPHA_LEVEL}) in: {'; '.join(moved)}.")
    for r in differ:
        parts = [
            f"{m.upper()} {signed(r.tests[m].mean_diff)} (p {pval(r.tests[m].p_t)})"
            for m in METRICS
            if m.upper() in r.verdict
        ]
        out.append(f"- {r.encoder}: {r.label}: {', '.join(parts)} points, {names[0]} − {names[1]} ({r.verdict}).")
    return out


# ---- figure and entry point -------------------------------------------------------------------------------


def figure(a: Cells, b: Cells, result: Sequence[Reproduction], names: tuple[str, str], title: str):
    """Each matched fold's UAR and WAR in A against B, one colour per encoder, with the identity line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), dpi=100, squeeze=False, layout="constrained")
    encoders = list(dict.fromkeys(r.encoder for r in result))
    colors = {e: f"C{i % 10}" for i, e in enumerate(encoders)}
    for ax, m in zip(axes[0], ("uar", "war"), strict=True):
        lo, hi = 1.0, 0.0
        for r in result:
            fa, fb = a.fold_values(r.config, f"test_{m}"), b.fold_values(r.config, f"test_{m}")
            common = sorted(set(fa.index) & set(fb.index))
            x, y = 100 * fa.loc[common].to_numpy(), 100 * fb.loc[common].to_numpy()
            marker = "x" if r.verdict.startswith("differ") else "o"
            ax.scatter(x, y, s=22, color=colors[r.encoder], marker=marker, alpha=0.8)
            if len(x):
                lo, hi = min(lo, x.min() / 100, y.min() / 100), max(hi, x.max() / 100, y.max() / 100)
        span = (100 * max(0.0, lo - 0.02), 100 * min(1.0, hi + 0.02)) if hi >= lo else (0, 100)
        ax.plot(span, span, color="black", lw=0.8)
        ax.set_xlabel(f"{m.upper()} (%), {names[0]}")
        ax.set_ylabel(f"{m.upper()} (%), {names[1]}")
        ax.set_title(f"{m.upper()} per fold (x: a configuration that differs)", fontsize=9)
        ax.grid(alpha=0.3)
    for e, c in colors.items():
        axes[0, 1].scatter([], [], color=c, label=e)
    if encoders:
        axes[0, 1].legend(fontsize=8, loc="lower right")
    suptitle(fig, title)
    return fig


@dataclass(frozen=True)
class CompareReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    result: tuple[Reproduction, ...]
    differences: tuple[tuple[str, str, str], ...]


def result_frame(result: Sequence[Reproduction]) -> pd.DataFrame:
    rows = []
    for r in result:
        row = {"encoder": r.encoder, "configuration": r.label, "folds": r.folds}
        for m in METRICS:
            mean_a, std_a, mean_b, std_b = r.figures[m]
            t, b = r.tests[m], r.boots[m]
            row |= {
                f"{m}_mean_a": mean_a,
                f"{m}_std_a": std_a,
                f"{m}_mean_b": mean_b,
                f"{m}_std_b": std_b,
                f"{m}_diff": t.mean_diff,
                f"{m}_p_t": t.p_t,
                f"{m}_p_wilcoxon": t.p_w,
                f"{m}_boot_diff": b.estimate if b else None,
                f"{m}_boot_low": b.low if b else None,
                f"{m}_boot_high": b.high if b else None,
                f"{m}_significant": r.significant(m),
            }
        for g, (mean_a, mean_b, t) in r.genders.items():
            row |= {f"uar_{g}_a": mean_a, f"uar_{g}_b": mean_b, f"uar_{g}_diff": t.mean_diff, f"uar_{g}_p_t": t.p_t}
        ag = r.agreement
        row |= {
            "shared_utterances": ag.utterances if ag else 0,
            "same_predictions": ag.same if ag else 0,
            "kappa": ag.kappa if ag else None,
            "verdict": r.verdict,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _read_predictions(tracker: Tracker, cells: Cells) -> dict[str, pd.DataFrame]:
    blobs = tracker.read_artifacts(cells.runs.values(), "predictions.csv")
    return {run_id: pd.read_csv(io.BytesIO(blob), dtype={"id": str, "speaker": str}) for run_id, blob in blobs.items()}


def write_compare_report(
    tracker_a: Tracker,
    tracker_b: Tracker,
    name_a: str,
    name_b: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> CompareReport:
    """Read both studies' fold runs and predictions and write ``compare.md/.csv/.png`` under the first's folder."""
    if tracker_a.uri == tracker_b.uri and tracker_a.experiment_id == tracker_b.experiment_id:
        raise ComparePairError(
            f"{name_a} and {name_b} log to the same experiment of the same store: nothing to compare"
        )
    a, b = load_cells(tracker_a, name_a, encoders), load_cells(tracker_b, name_b, encoders)
    result = compare_studies(
        a, b, _read_predictions(tracker_a, a), _read_predictions(tracker_b, b), n_boot=n_boot, seed=seed
    )
    configs_b = set(b.configs()["config"])
    configs_a = set(a.configs()["config"])
    only = (
        [c for c in a.configs()["config"] if c not in configs_b],
        [c for c in b.configs()["config"] if c not in configs_a],
    )
    diffs = differences(a, b)
    # one study file run in two stores (yours and a colleague's) has one name twice
    shown = (name_a, name_b) if name_a != name_b else (f"{name_a} (A)", f"{name_b} (B)")
    heads = (header(a, tracker_a, shown[0]), header(b, tracker_b, shown[1]))
    folder = ReportFolder(out_root, name_a)
    figs = []
    if result:
        figs.append(folder.figure("compare.png", figure(a, b, result, shown, f"{shown[0]} vs {shown[1]}")))
    text = markdown(result, shown, heads, diffs, only, n_boot, seed, [f.name for f in figs])
    md = folder.text("compare.md", text)
    csv = folder.csv("compare.csv", result_frame(result))
    page = folder.publish(tracker_a, study_tags)
    return CompareReport(folder.path, md, csv, tuple(figs), page, tuple(result), tuple(diffs))
