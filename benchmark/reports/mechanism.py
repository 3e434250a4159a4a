"""Mechanism report: does gender help exactly where the emotion cues are relative to the gender baseline?

The embedded corpus encodes emotion as prosodic shifts relative to each speaker's gender-typical baseline;
its control twin has the same speakers, labels and draws but decouples the baseline from gender (see
``benchmark.data.synthetic``). Two studies run the same grid, one on each (``studies/mechanism.toml`` and
``studies/mechanism_control.toml``). If the paper's hypothesis holds in this setting, the gain of the
gender-aware variants over Emo-CLAP appears on the first and not on the second.

For each gender-aware configuration and each corpus, the gain over Emo-CLAP comes with the ablation
report's paired tests over folds and paired speaker-bootstrap interval; the difference of the two gains
(gender-relative − control) comes with a bootstrap interval (the two corpora resampled independently) and
a paired t-test over folds (folds are the same test sessions in both corpora). The verdict is stated as
measured, whatever it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.reports import stats
from benchmark.reports.ablation import METRICS, Comparison, all_comparisons, read_study
from benchmark.reports.common import (
    Cells,
    ReportFolder,
    error_bars,
    header,
    header_lines,
    md_table,
    pm,
    pval,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

# keys the two studies may differ in; everything else must match for the comparison to mean anything
_FREE_KEYS = {"name", "description", "path", "tracking", "paper"}


class MechanismPairError(ValueError):
    """Two studies that are not a gender-relative / control pair of the same grid."""


def check_pair(study, control) -> None:
    """Raise :class:`MechanismPairError` unless ``control`` is ``study``'s grid on the control twin.

    Both must use the embedded corpus, ``study`` with ``data.control = false`` and ``control`` with
    ``data.control = true``, and agree on every other key but name, description, tracking and paper.
    """
    a, b = study.to_dict(), control.to_dict()
    where = f"{study.path} / {control.path}"
    if a["data"]["corpus"] != "embedded" or b["data"]["corpus"] != "embedded":
        raise MechanismPairError(f"{where}: data.corpus: the mechanism test needs the embedded corpus in both studies")
    if a["data"]["control"] or not b["data"]["control"]:
        raise MechanismPairError(
            f"{where}: data.control: expected false in {study.path} and true in {control.path}, "
            f"got {a['data']['control']} and {b['data']['control']}"
        )
    if study.experiment_name == control.experiment_name and study.tracking.uri == control.tracking.uri:
        raise MechanismPairError(
            f"{where}: both studies log to experiment {study.experiment_name!r}; give them different names"
        )
    for table in sorted(set(a) | set(b)):
        if table in _FREE_KEYS:
            continue
        left, right = a.get(table), b.get(table)
        if table == "data":
            left = {k: v for k, v in left.items() if k != "control"}
            right = {k: v for k, v in right.items() if k != "control"}
        if left != right:
            keys = sorted(set(left) | set(right)) if isinstance(left, dict) and isinstance(right, dict) else []
            key = next((f"{table}.{k}" for k in keys if left.get(k) != right.get(k)), table)
            raise MechanismPairError(f"{where}: {key}: the two studies must run the same grid, they differ here")


@dataclass(frozen=True)
class Contrast:
    """One gender-aware configuration on one metric: gain over Emo-CLAP on each corpus, and their difference."""

    label: str
    encoder: str
    metric: str
    main: Comparison
    control: Comparison
    test: stats.PairedTest  # per-fold gain on main vs per-fold gain on control
    boot: stats.Interval | None

    @property
    def verdict(self) -> str:
        m, c = self.main, self.control
        up = m.significant and m.test.mean_diff > 0
        down = m.significant and m.test.mean_diff < 0
        c_any = c.significant
        if up and not c_any:
            return "gain on the gender-relative corpus, none on the control: as the mechanism predicts"
        if up and c_any:
            side = "a gain" if c.test.mean_diff > 0 else "a loss"
            return f"gain on the gender-relative corpus, but also {side} on the control: not specific to gender-relative cues"
        if down and c_any and c.test.mean_diff < 0:
            return "significantly worse than Emo-CLAP on both corpora: a loss not specific to gender-relative cues"
        if down:
            return "significantly worse than Emo-CLAP on the gender-relative corpus only: against the mechanism"
        if c_any:
            side = "gain" if c.test.mean_diff > 0 else "loss"
            return f"no significant gain on the gender-relative corpus, a significant {side} on the control"
        return "no significant difference to Emo-CLAP on either corpus: no evidence either way at this size"


def _fold_gains(cells: Cells, config: str, baseline: str, metric: str) -> pd.Series:
    return (cells.fold_values(config, f"test_{metric}") - cells.fold_values(baseline, f"test_{metric}")).dropna()


def contrasts(
    cells_main: Cells, comps_main: Sequence[Comparison], cells_ctrl: Cells, comps_ctrl: Sequence[Comparison]
) -> list[Contrast]:
    """Match configurations across the two studies by encoder and label, and contrast their gains."""

    def key(cells: Cells, c: Comparison) -> tuple[str, str, str]:
        row = cells.frame.loc[cells.frame["config"] == c.config].iloc[0]
        return row["encoder"], row["label"], c.metric

    ctrl = {key(cells_ctrl, c): c for c in comps_ctrl}
    out = []
    for c in comps_main:
        k = key(cells_main, c)
        if k not in ctrl:
            continue
        o = ctrl[k]
        gm = _fold_gains(cells_main, c.config, c.baseline, c.metric)
        gc = _fold_gains(cells_ctrl, o.config, o.baseline, o.metric)
        common = sorted(set(gm.index) & set(gc.index))
        test = stats.paired_tests(gm.loc[common].to_numpy(), gc.loc[common].to_numpy())
        boot = c.boot.minus(o.boot) if c.boot is not None and o.boot is not None else None
        out.append(Contrast(k[1], k[0], c.metric, c, o, test, boot))
    return out


def _iv(iv: stats.Interval | None) -> str:
    if iv is None or not math.isfinite(iv.low):
        return "–"
    return f"{signed(iv.estimate)} [{signed(iv.low)}, {signed(iv.high)}]"


def markdown(
    result: Sequence[Contrast],
    summaries: tuple[pd.DataFrame, pd.DataFrame],
    names: tuple[str, str],
    head: Mapping[str, str],
    n_boot: int,
    seed: int,
    figures: Sequence[str],
) -> str:
    lines = header_lines(head)
    lines += [
        f"The same grid on the gender-relative embedded corpus (`{names[0]}`) and on its control twin "
        f"(`{names[1]}`, prosodic baselines decoupled from gender). *Gain*: configuration − Emo-CLAP of the "
        "same encoder, percentage points, mean over matched folds, with the paired t-test and Wilcoxon "
        f"p-values over folds and the pooled difference with its 95 % paired speaker-bootstrap interval "
        f"({n_boot} resamplings within gender, seed {seed}). A gain *appears* when the t-test gives p < 0.05 "
        "and the interval excludes 0. *Difference*: gain on the gender-relative corpus − gain on the control, "
        "with a bootstrap interval (corpora resampled independently) and a paired t-test over folds.",
        "",
        "## WAR and UAR per corpus",
        "",
    ]
    rows = []
    main, ctrl = summaries
    merged = main.merge(ctrl, on=["encoder", "label"], how="left", suffixes=("_main", "_ctrl"))
    for _, r in merged.iterrows():
        rows.append(
            [
                f"{r['encoder']}: {r['label']}",
                pm(r["test_war_mean_main"], r["test_war_std_main"]),
                pm(r["test_uar_mean_main"], r["test_uar_std_main"]),
                pm(r["test_war_mean_ctrl"], r["test_war_std_ctrl"]),
                pm(r["test_uar_mean_ctrl"], r["test_uar_std_ctrl"]),
            ]
        )
    lines += md_table(
        ["configuration", "WAR gender-relative", "UAR gender-relative", "WAR control", "UAR control"], rows
    )
    lines += ["## Gain over Emo-CLAP", ""]
    rows = []
    for c in result:
        rows.append(
            [
                f"{c.encoder}: {c.label}",
                c.metric.upper(),
                signed(c.main.test.mean_diff),
                f"{pval(c.main.test.p_t)} / {pval(c.main.test.p_w)}",
                _iv(c.main.boot),
                signed(c.control.test.mean_diff),
                f"{pval(c.control.test.p_t)} / {pval(c.control.test.p_w)}",
                _iv(c.control.boot),
                signed(c.test.mean_diff),
                pval(c.test.p_t),
                _iv(c.boot),
            ]
        )
    cols = [
        "configuration",
        "metric",
        "gain (gender-relative)",
        "p t / W",
        "bootstrap [95 % CI]",
        "gain (control)",
        "p t / W",
        "bootstrap [95 % CI]",
        "difference",
        "p t",
        "bootstrap [95 % CI]",
    ]
    lines += md_table(cols, rows)
    lines += ["## Verdict", ""]
    if not result:
        lines += ["No gender-aware configuration with an Emo-CLAP baseline in both studies.", ""]
    for c in result:
        note = "; ".join(n for n in (c.main.test.note, c.control.test.note) if n)
        lines.append(
            f"- {c.encoder}: {c.label}, {c.metric.upper()}: gain {signed(c.main.test.mean_diff)} on the "
            f"gender-relative corpus ({_iv(c.main.boot)}), {signed(c.control.test.mean_diff)} on the control "
            f"({_iv(c.control.boot)}) — **{c.verdict}**." + (f" ({note})" if note else "")
        )
    lines.append("")
    uar = [c for c in result if c.metric == "uar"]
    if uar:
        hits = [c for c in uar if c.verdict.endswith("as the mechanism predicts")]
        lines += [
            f"In UAR, {len(hits)} of {len(uar)} gender-aware configurations show the pattern the hypothesis "
            "predicts (a gain on the gender-relative corpus and none on the control).",
            "",
        ]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def figure(result: Sequence[Contrast], title: str):
    """Gain over Emo-CLAP with 95 % bootstrap intervals on each corpus, per configuration (UAR and WAR)."""
    labels = list(dict.fromkeys(f"{c.encoder}: {c.label}" for c in result))
    fig, axes = plt.subplots(
        1, 2, figsize=(10.5, 2.4 + 0.5 * len(labels)), dpi=80, sharey=True, squeeze=False, layout="constrained"
    )
    y = np.arange(len(labels))[::-1]
    where = {lab: yi for lab, yi in zip(labels, y, strict=True)}
    for ax, metric in zip(axes[0], ("uar", "war"), strict=True):
        for c in (c for c in result if c.metric == metric):
            yi = where[f"{c.encoder}: {c.label}"]
            for offset, comp, color, name in (
                (0.13, c.main, "tab:blue", "gender-relative"),
                (-0.13, c.control, "tab:orange", "control"),
            ):
                if comp.boot is None or not math.isfinite(comp.boot.low):
                    continue
                b = comp.boot
                ax.errorbar(
                    100 * b.estimate,
                    yi + offset,
                    xerr=100 * error_bars(b.estimate, b.low, b.high),
                    fmt="o",
                    color=color,
                    capsize=3,
                    label=name,
                )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"{metric.upper()} gain over Emo-CLAP (percentage points)")
        ax.set_title(f"{metric.upper()}: pooled gain, 95 % speaker bootstrap", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, labels, fontsize=8)
    axes[0, 0].set_ylim(-0.7, len(labels) - 0.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    fig.legend(unique.values(), [f"{n} corpus" for n in unique], loc="outside lower center", ncols=2, fontsize=8)
    suptitle(fig, title)
    return fig


@dataclass(frozen=True)
class MechanismReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    contrasts: tuple[Contrast, ...]


def contrast_frame(result: Sequence[Contrast]) -> pd.DataFrame:
    rows = []
    for c in result:
        row = {"encoder": c.encoder, "configuration": c.label, "metric": c.metric}
        for side, comp in (("main", c.main), ("control", c.control)):
            b = comp.boot
            row |= {
                f"{side}_gain": comp.test.mean_diff,
                f"{side}_folds": comp.test.n,
                f"{side}_p_t": comp.test.p_t,
                f"{side}_p_wilcoxon": comp.test.p_w,
                f"{side}_boot": b.estimate if b else None,
                f"{side}_low": b.low if b else None,
                f"{side}_high": b.high if b else None,
                f"{side}_significant": comp.significant,
            }
        row |= {
            "difference": c.test.mean_diff,
            "difference_p_t": c.test.p_t,
            "difference_boot": c.boot.estimate if c.boot else None,
            "difference_low": c.boot.low if c.boot else None,
            "difference_high": c.boot.high if c.boot else None,
            "verdict": c.verdict,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def write_mechanism_report(
    tracker: Tracker,
    control_tracker: Tracker,
    study_name: str,
    control_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> MechanismReport:
    """Read both studies' runs and predictions (bulk) and write ``mechanism.md/.csv/.png`` under the first."""
    sides = []
    for k, (tr, name) in enumerate(((tracker, study_name), (control_tracker, control_name))):
        cells, _, rc = read_study(tr, name, encoders)
        # independent bootstrap streams for the two corpora
        comps = all_comparisons(cells, rc, n_boot=n_boot, seed=seed + k)
        sides.append((cells, comps, cells.summary([f"test_{m}" for m in METRICS])))
    (cm, comps_m, sum_m), (cc, comps_c, sum_c) = sides
    result = contrasts(cm, comps_m, cc, comps_c)
    head = header(cm, tracker, f"{study_name}: mechanism — gender-relative corpus vs its control twin")
    ctrl_head = header(cc, control_tracker, "")
    head = {**head, "data": f"{head['data']}; control: {ctrl_head['data']} (data.control = true)"}
    head["runs"] += f"; control: {ctrl_head['runs']}"
    out = ReportFolder(out_root, study_name)
    figs = []
    if result:
        figs.append(out.figure("mechanism.png", figure(result, f"{study_name} vs {control_name} — {head['weights']}")))
    md = out.text(
        "mechanism.md",
        markdown(result, (sum_m, sum_c), (study_name, control_name), head, n_boot, seed, [f.name for f in figs]),
    )
    csv = out.csv("mechanism.csv", contrast_frame(result))
    page = out.publish(tracker, study_tags)
    return MechanismReport(out.path, md, csv, tuple(figs), page, tuple(result))
