"""Learning curves: per configuration, validation UAR/WAR and training loss per epoch over folds.

Each fold run logs ``train_loss``, ``val_war`` and ``val_uar`` at every epoch (step = epoch, from 1) and the
epoch whose validation UAR was best, ``best_epoch``, whose weights were then tested. This report reads those
histories in bulk and gives, per configuration:

- each epoch's mean and sample std over folds (seeds of one fold averaged first), as a table and a plot;
- where the chosen epoch fell: its mean and range over fold runs, and in how many fold runs it was the last
  epoch trained. When that is most of them, validation UAR was still rising when training stopped and more
  epochs (``train.epochs``) may help; when it lies in the first third of training and validation UAR ended
  lower in every fold run, the curves peaked early; when validation UAR never rose above chance in any fold
  run, the model did not learn;
- the validation UAR at the chosen epoch against the test UAR: picking the best of many epochs on the
  validation split flatters its figure, and the difference says by how much.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.reports.common import (
    Cells,
    ReportFolder,
    header,
    header_lines,
    load_cells,
    md_table,
    pct,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

CURVE_METRICS = ("val_uar", "val_war", "train_loss")
CHANCE_UAR = 0.25  # 4 classes


class NoCurvesError(ValueError):
    """No finished fold run of the study logged per-epoch metrics."""


@dataclass(frozen=True)
class CurvesReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    curves: pd.DataFrame  # per configuration x epoch: mean, std and folds of each curve metric
    selection: pd.DataFrame  # per configuration: the chosen epochs and validation vs test


def epoch_frame(cells: Cells, histories: Mapping[str, Mapping[str, list[tuple[int, float]]]]) -> pd.DataFrame:
    """One row per fold run and epoch: ``run_id, config, fold, seed, epoch`` and each curve metric."""
    rows = []
    meta = cells.frame.set_index("run_id")[["config", "fold", "seed"]]
    for run_id, series in histories.items():
        config, fold, seed = meta.loc[run_id]
        by_epoch: dict[int, dict[str, float]] = {}
        for key, points in series.items():
            for step, value in points:
                by_epoch.setdefault(step, {})[key] = value
        for epoch, values in by_epoch.items():
            rows.append({"run_id": run_id, "config": config, "fold": fold, "seed": seed, "epoch": epoch, **values})
    frame = pd.DataFrame(rows, columns=["run_id", "config", "fold", "seed", "epoch", *CURVE_METRICS])
    return frame.sort_values(["config", "fold", "seed", "epoch"], kind="stable").reset_index(drop=True)


def summarize_curves(cells: Cells, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and epoch: mean and sample std over folds (seeds averaged first), and the fold count."""
    per_fold = epochs.groupby(["config", "epoch", "fold"], sort=False)[list(CURVE_METRICS)].mean().reset_index()
    grouped = per_fold.groupby(["config", "epoch"], sort=False)
    out = grouped.size().rename("folds").to_frame()
    for m in CURVE_METRICS:
        out[f"{m}_mean"] = grouped[m].mean()
        out[f"{m}_std"] = grouped[m].std(ddof=1).fillna(0.0)
    out = out.reset_index()
    order = {c: i for i, c in enumerate(cells.configs()["config"])}
    out = out.sort_values(["config", "epoch"], key=lambda s: s.map(order) if s.name == "config" else s, kind="stable")
    return cells.configs().merge(out, on="config", how="right").reset_index(drop=True)


def summarize_selection(cells: Cells, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: fold runs, epochs trained, the chosen epoch, and validation vs test UAR."""
    val = epochs.dropna(subset=["val_uar"]).sort_values(["run_id", "epoch"]).groupby("run_id")
    f = cells.frame.set_index("run_id")
    runs = f.loc[f.index.intersection(val.size().index)]
    runs = runs.assign(
        last_epoch=val["epoch"].max(),
        val_uar_last=val["val_uar"].last(),
        val_uar_max=val["val_uar"].max(),
    )
    best = runs["best_epoch"].astype(float) if "best_epoch" in runs else pd.Series(math.nan, index=runs.index)
    # the validation UAR of the chosen epoch, from the run's own history
    at = epochs.set_index(["run_id", "epoch"])["val_uar"]
    runs["best"] = best
    runs["val_uar_best"] = [
        at.get((run_id, int(b)), math.nan) if math.isfinite(b) else math.nan
        for run_id, b in zip(runs.index, best, strict=True)
    ]
    rows = []
    for config, g in runs.groupby("config", sort=False):
        per_fold = g.groupby("fold")[["val_uar_best", "test_uar"]].mean()
        rows.append(
            {
                "config": config,
                "runs": len(g),
                "epochs_min": int(g["last_epoch"].min()),
                "epochs_max": int(g["last_epoch"].max()),
                "best_mean": g["best"].mean(),
                "best_min": g["best"].min(),
                "best_max": g["best"].max(),
                "best_is_last": int((g["best"] == g["last_epoch"]).sum()),
                # chosen in the first third, and validation UAR lower at the end than at the chosen epoch
                "peaked_early": int(
                    ((g["best"] <= g["last_epoch"] / 3) & (g["val_uar_last"] < g["val_uar_best"])).sum()
                ),
                "at_chance": int((g["val_uar_max"] <= CHANCE_UAR + 1e-9).sum()),
                "val_uar_best_mean": per_fold["val_uar_best"].mean(),
                "test_uar_mean": per_fold["test_uar"].mean(),
            }
        )
    out = pd.DataFrame(rows)
    out["val_minus_test"] = out["val_uar_best_mean"] - out["test_uar_mean"]
    return cells.configs().merge(out, on="config", how="right")


def advice(row: pd.Series) -> str | None:
    """One sentence on how a configuration's training went, or None when there is nothing to say."""
    runs, name = int(row["runs"]), f"**{row['encoder']} {row['label']}**"
    if runs and int(row["at_chance"]) == runs:
        return (
            f"{name}: validation UAR never rose above chance (25 %) in any fold run: the model did not learn to "
            "tell the classes apart (see the training loss; the learning rate or alpha may be at fault)."
        )
    if runs and int(row["best_is_last"]) * 2 > runs:
        return (
            f"{name}: the chosen epoch was the last one trained in {int(row['best_is_last'])} of {runs} fold runs: "
            "validation UAR was still rising, so more epochs (`train.epochs`) may help."
        )
    if runs and int(row["peaked_early"]) == runs and row["epochs_min"] >= 3:
        return (
            f"{name}: validation UAR peaked in the first third of training and ended lower in every fold run: "
            "fewer epochs, or a lower learning rate, may do as well."
        )
    return None


def markdown(curves: pd.DataFrame, selection: pd.DataFrame, head: Mapping[str, str], figures: Sequence[str]) -> str:
    lines = header_lines(head)
    lines += [
        "Per configuration, the validation figures and training loss at each epoch (validation is carved from "
        "the training sessions), mean ± sample std over folds; each fold run keeps the epoch with the best "
        "validation UAR (*chosen*) and is tested with it. *Last*: fold runs whose chosen epoch was the last "
        "one trained. *Val − test*: validation UAR at the chosen epoch minus test UAR, points; choosing the "
        "best of many epochs on the validation split makes its figure optimistic.",
        "",
    ]
    notes = [a for _, r in selection.iterrows() if (a := advice(r))]
    if notes:
        lines += [*(f"- {n}" for n in notes), ""]
    for encoder, rows in selection.groupby("encoder", sort=False):
        lines += [f"## {encoder}", ""]
        table = []
        for _, r in rows.iterrows():
            epochs = (
                f"{r['epochs_min']}" if r["epochs_min"] == r["epochs_max"] else f"{r['epochs_min']}–{r['epochs_max']}"
            )
            chosen = (
                "–"
                if not math.isfinite(r["best_mean"])
                else f"{r['best_mean']:.1f} ({r['best_min']:g}–{r['best_max']:g})"
            )
            table.append(
                [
                    r["label"],
                    int(r["runs"]),
                    epochs,
                    chosen,
                    f"{int(r['best_is_last'])} of {int(r['runs'])}",
                    pct(r["val_uar_best_mean"]),
                    pct(r["test_uar_mean"]),
                    signed(r["val_minus_test"]),
                ]
            )
        cols = [
            "configuration",
            "fold runs",
            "epochs",
            "chosen epoch (range)",
            "last",
            "val UAR",
            "test UAR",
            "val − test",
        ]
        lines += md_table(cols, table)
        table = []
        for _, r in curves[curves["encoder"] == encoder].iterrows():
            table.append(
                [
                    r["label"],
                    int(r["epoch"]),
                    int(r["folds"]),
                    f"{pct(r['val_uar_mean'])} ± {pct(r['val_uar_std'])}",
                    f"{pct(r['val_war_mean'])} ± {pct(r['val_war_std'])}",
                    _loss(r["train_loss_mean"], r["train_loss_std"]),
                ]
            )
        lines += [
            "Per epoch:",
            "",
            *md_table(["configuration", "epoch", "folds", "val UAR", "val WAR", "train loss"], table),
        ]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _loss(mean: float, std: float) -> str:
    return "–" if not math.isfinite(mean) else f"{mean:.4f} ± {std:.4f}"


def figure(curves: pd.DataFrame, title: str):
    """A row per encoder: validation UAR and training loss against the epoch, ±1 std bands over folds."""
    encoders = list(dict.fromkeys(curves["encoder"]))
    fig, axes = plt.subplots(len(encoders), 2, figsize=(11, 3.2 * len(encoders) + 0.9), dpi=110, squeeze=False)
    for row, encoder in zip(axes, encoders, strict=True):
        sub = curves[curves["encoder"] == encoder]
        for label, g in sub.groupby("label", sort=False):
            x = g["epoch"].to_numpy()
            for ax, metric, scale in ((row[0], "val_uar", 100.0), (row[1], "train_loss", 1.0)):
                mean, std = scale * g[f"{metric}_mean"].to_numpy(), scale * g[f"{metric}_std"].to_numpy()
                (line,) = ax.plot(x, mean, marker="o", ms=3, label=label)
                ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, lw=0)
        row[0].axhline(100 * CHANCE_UAR, color="grey", lw=0.8, ls=":", label="chance (4 classes)")
        row[0].set_ylabel(f"{encoder}\nvalidation UAR (%)")
        row[1].set_ylabel("training loss")
        for ax in row:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
        row[0].legend(fontsize=7, loc="best")
    suptitle(fig, title)
    fig.tight_layout()
    return fig


def write_curves_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> CurvesReport:
    """Read the study's fold runs and their per-epoch histories (bulk reads); write ``curves.md/.csv/.png``.

    ``n_boot`` and ``seed`` are accepted for a uniform interface; this report draws no bootstrap.

    Raises:
        NoCurvesError: no finished fold run logged per-epoch metrics; nothing is written.
    """
    cells = load_cells(tracker, study_name, encoders)
    histories = tracker.read_histories(cells.runs.values(), CURVE_METRICS)
    epochs = epoch_frame(cells, histories)
    if epochs.empty:
        raise NoCurvesError(
            f"study {study_name!r}: none of its {len(cells.frame)} finished fold runs logged per-epoch metrics "
            f"({', '.join(CURVE_METRICS)})"
        )
    curves = summarize_curves(cells, epochs)
    selection = summarize_selection(cells, epochs)
    head = header(cells, tracker, f"{study_name}: learning curves and the chosen epochs")
    out = ReportFolder(out_root, study_name)
    fig = out.figure("curves.png", figure(curves, f"{study_name} — {head['data']}\n{head['weights']}"))
    md = out.text("curves.md", markdown(curves, selection, head, [fig.name]))
    csv = out.csv("curves.csv", curves)
    page = out.publish(tracker, study_tags)
    return CurvesReport(out.path, md, csv, (fig,), page, curves, selection)
