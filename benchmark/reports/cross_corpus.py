"""Cross-corpus report: each configuration on its own test fold and on every evaluation corpus, per gender.

It reads what fold runs log when a study lists evaluation corpora (``data.eval_corpora``): for each
evaluation corpus ``C``, the metrics ``xc_C_war``, ``xc_C_uar``, ``xc_C_war_F``, ``xc_C_war_M``,
``xc_C_uar_F``, ``xc_C_uar_M`` and ``xc_C_n`` (utterances), and the artifact
``cross_corpus/C/predictions.csv``. Corpora are discovered from the metric names, so the report needs
nothing but the runs; ``data.eval_corpora`` only orders them and names corpora that were listed but never
logged.

Every fold's model is scored on the whole evaluation corpus, so the spread over folds is the spread of the
trained models, not of the evaluation speakers: gaps get a Student-t interval over folds. Differences to
Emo-CLAP are paired over folds (the same training sessions). Metrics only: one bulk query, whatever the
size of the evaluation corpora.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.reports import stats
from benchmark.reports.common import (
    Cells,
    NoRunsError,
    ReportFolder,
    error_bars,
    header,
    header_lines,
    load_cells,
    md_table,
    pm,
    pval,
    signed,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

_XC = re.compile(r"xc_(?P<corpus>.+?)_(?P<metric>war|uar|n)(?:_(?P<gender>[FM]))?")
CORPUS_NAMES = {"ravdess": "RAVDESS", "cremad": "CREMA-D", "crema-d": "CREMA-D", "emodb": "EmoDB", "iemocap": "IEMOCAP"}
IN_CORPUS = "in-corpus"
SUFFIXES = ("war", "uar", "war_F", "war_M", "uar_F", "uar_M")


class NoCrossCorpusError(NoRunsError):
    """A study whose runs logged no cross-corpus metrics."""


def corpora_of(metric_names: Sequence[str], listed: Sequence[str] = ()) -> list[str]:
    """Evaluation corpora with ``xc_C_war`` or ``xc_C_uar`` logged: ``listed`` order first, then by name."""
    found = set()
    for name in metric_names:
        m = _XC.fullmatch(name)
        if m and m["metric"] in ("war", "uar"):
            found.add(m["corpus"])
    return [c for c in listed if c in found] + sorted(found - set(listed))


def listed_corpora(cells: Cells) -> list[str]:
    """``data.eval_corpora`` as logged (a comma-separated string or a JSON list), if any run has it."""
    out: list[str] = []
    for run in cells.runs.values():
        raw = run.params.get("data.eval_corpora", "").strip()
        if not raw:
            continue
        try:
            items = json.loads(raw) if raw.startswith("[") else raw.split(",")
        except json.JSONDecodeError:
            items = raw.strip("[]").split(",")
        for item in items:
            item = str(item).strip().strip("'\"")
            if item and item not in out:
                out.append(item)
    return out


def corpus_name(corpus: str) -> str:
    return CORPUS_NAMES.get(corpus.lower(), corpus)


@dataclass(frozen=True)
class CrossCorpusReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    frame: pd.DataFrame
    corpora: tuple[str, ...]


def _metric(corpus: str, suffix: str) -> str:
    return f"test_{suffix}" if corpus == IN_CORPUS else f"xc_{corpus}_{suffix}"


def long_frame(cells: Cells, corpora: Sequence[str]) -> pd.DataFrame:
    """One row per configuration × corpus (in-corpus first): means, stds, gaps with t-intervals, Δ vs Emo-CLAP."""
    names = [_metric(c, s) for c in [IN_CORPUS, *corpora] for s in SUFFIXES] + [f"xc_{c}_n" for c in corpora]
    folds = cells.per_fold(names)
    configs = cells.configs()
    rows = []
    for _, cfg in configs.iterrows():
        mine = folds[folds["config"] == cfg["config"]].set_index("fold")
        base = cells.baseline_of(cfg["config"]) if cfg["variant"] != "emo-clap" else None
        base_folds = folds[folds["config"] == base].set_index("fold") if base else None
        for corpus in [IN_CORPUS, *corpora]:
            row = {k: cfg[k] for k in configs.columns}
            row["corpus"] = corpus
            cols = {s: _metric(corpus, s) for s in SUFFIXES}
            present = mine[cols["uar"]].dropna()
            row["folds"] = len(present)
            if corpus != IN_CORPUS:
                n = mine[f"xc_{corpus}_n"].dropna()
                row["n"] = float(n.iloc[0]) if len(n) else math.nan
            for s, col in cols.items():
                v = mine[col].dropna()
                row[f"{s}_mean"] = float(v.mean()) if len(v) else math.nan
                row[f"{s}_std"] = float(v.std(ddof=1)) if len(v) > 1 else (0.0 if len(v) else math.nan)
            for metric in ("war", "uar"):
                gap = (mine[cols[f"{metric}_F"]] - mine[cols[f"{metric}_M"]]).dropna()
                row[f"gap_{metric}"] = float(gap.mean()) if len(gap) else math.nan
                row[f"gap_{metric}_low"], row[f"gap_{metric}_high"] = stats.t_interval(gap.to_numpy())
            if corpus != IN_CORPUS:
                both = (mine[cols["uar"]] - mine[_metric(IN_CORPUS, "uar")]).dropna()
                row["uar_drop"] = float(both.mean()) if len(both) else math.nan
            if base_folds is not None:
                a, b = mine[cols["uar"]].dropna(), base_folds[cols["uar"]].dropna()
                common = sorted(set(a.index) & set(b.index))
                test = stats.paired_tests(a.loc[common].to_numpy(), b.loc[common].to_numpy())
                row |= {"baseline": base, "uar_vs_emo": test.mean_diff, "p_t": test.p_t, "p_wilcoxon": test.p_w}
                row["test_note"] = test.note
            rows.append(row)
    return pd.DataFrame(rows)


def _gap(r: pd.Series, metric: str) -> str:
    est = r[f"gap_{metric}"]
    if not math.isfinite(est):
        return "–"
    low, high = r[f"gap_{metric}_low"], r[f"gap_{metric}_high"]
    iv = f" [{signed(low)}, {signed(high)}]" if math.isfinite(low) else ""
    return signed(est) + iv


def markdown(
    frame: pd.DataFrame,
    corpora: Sequence[str],
    listed: Sequence[str],
    head: Mapping[str, str],
    in_name: str,
    figures: Sequence[str],
) -> str:
    lines = header_lines(head)
    names = {IN_CORPUS: "in-corpus", **{c: corpus_name(c) for c in corpora}}
    lines += [
        f"Each fold's model, trained on {in_name}, scored on its own test fold (*in-corpus*) and on every "
        "evaluation corpus (the 4 classes shared with IEMOCAP). WAR and UAR in %, mean ± sample std over "
        "folds. *Drop*: evaluation-corpus UAR − in-corpus UAR, points. *Gap*: female − male, points, mean over "
        "folds with a 95 % Student-t interval over folds (the same evaluation utterances for every fold, so "
        "it reflects model variability, not speaker sampling). *vs Emo-CLAP*: UAR difference to Emo-CLAP of "
        "the same encoder on that corpus, paired over folds (t-test p).",
        "",
        "Evaluation corpora: "
        + ", ".join(f"{corpus_name(c)} (`xc_{c}_*`, {_n(frame, c)} utterances)" for c in corpora)
        + ".",
        "",
    ]
    unlogged = [c for c in listed if c not in corpora]
    if unlogged:
        lines += [f"*Listed in data.eval_corpora but never logged: {', '.join(unlogged)}.*", ""]
    for encoder, rows in frame.groupby("encoder", sort=False):
        lines += [f"## {encoder}", ""]
        table = []
        for _, cr in rows.groupby("config", sort=False):
            by = cr.set_index("corpus")
            cells_ = [cr.iloc[0]["label"]]
            for corpus in [IN_CORPUS, *corpora]:
                r = by.loc[corpus]
                cells_ += [pm(r["war_mean"], r["war_std"]), pm(r["uar_mean"], r["uar_std"])]
                if corpus != IN_CORPUS:
                    cells_.append(signed(r["uar_drop"]))
            table.append(cells_)
        cols = ["configuration"]
        for corpus in [IN_CORPUS, *corpora]:
            cols += [f"{names[corpus]} WAR", f"{names[corpus]} UAR"] + ([] if corpus == IN_CORPUS else ["drop UAR"])
        lines += md_table(cols, table)
        table = []
        for _, r in rows.iterrows():
            vs = "–"
            if isinstance(r.get("baseline"), str) and math.isfinite(r.get("uar_vs_emo", math.nan)):
                vs = f"{signed(r['uar_vs_emo'])} (p {pval(r['p_t'])})"
            table.append(
                [
                    r["label"],
                    names[r["corpus"]],
                    pm(r["war_F_mean"], r["war_F_std"]),
                    pm(r["war_M_mean"], r["war_M_std"]),
                    pm(r["uar_F_mean"], r["uar_F_std"]),
                    pm(r["uar_M_mean"], r["uar_M_std"]),
                    _gap(r, "war"),
                    _gap(r, "uar"),
                    vs,
                    int(r["folds"]),
                ]
            )
        cols = [
            "configuration",
            "corpus",
            "WAR F",
            "WAR M",
            "UAR F",
            "UAR M",
            "gap WAR [95 % CI]",
            "gap UAR [95 % CI]",
            "UAR vs Emo-CLAP",
            "folds",
        ]
        lines += ["Per gender:", "", *md_table(cols, table)]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _n(frame: pd.DataFrame, corpus: str) -> str:
    n = frame.loc[frame["corpus"] == corpus, "n"].dropna()
    return "?" if n.empty else f"{int(n.iloc[0]):,}"


def figure(frame: pd.DataFrame, corpora: Sequence[str], in_name: str, title: str):
    """Per encoder: UAR per corpus (bars per configuration, ± std over folds) and the F−M UAR gap (± 95 % CI)."""
    encoders = list(dict.fromkeys(frame["encoder"]))
    order = [IN_CORPUS, *corpora]
    names = ["\n".join(textwrap.wrap(in_name, 24)) + "\n(test fold)", *[corpus_name(c) for c in corpora]]
    fig, axes = plt.subplots(
        2, len(encoders), figsize=(max(7.5, 4.8 * len(encoders)), 7.2), dpi=80, squeeze=False, layout="constrained"
    )
    for j, encoder in enumerate(encoders):
        sub = frame[frame["encoder"] == encoder]
        labels = list(dict.fromkeys(sub["label"]))
        width = 0.8 / max(1, len(labels))
        x = np.arange(len(order))
        for k, label in enumerate(labels):
            r = sub[sub["label"] == label].set_index("corpus").reindex(order)
            pos = x - 0.4 + width * (k + 0.5)
            axes[0, j].bar(pos, 100 * r["uar_mean"], width, yerr=100 * r["uar_std"].fillna(0), capsize=2, label=label)
            est = 100 * r["gap_uar"].to_numpy(dtype=float)
            err = 100 * error_bars(r["gap_uar"], r["gap_uar_low"], r["gap_uar_high"])
            axes[1, j].errorbar(pos, est, yerr=err, fmt="o", capsize=3)
        for ax in axes[:, j]:
            ax.set_xticks(x, names, fontsize=8)
            ax.set_xlabel("evaluation corpus")
            ax.grid(axis="y", alpha=0.3)
        axes[0, j].axhline(25, color="black", lw=0.6, ls=":", label="chance (4 classes)")
        axes[0, j].set_ylabel("UAR (%), mean ± std over folds")
        axes[0, j].set_ylim(0, 100)
        axes[0, j].set_title(f"{encoder}: UAR per corpus", fontsize=10)
        axes[0, j].legend(fontsize=7)
        axes[1, j].axhline(0, color="black", lw=0.8)
        axes[1, j].set_ylabel("UAR female − male (points)")
        axes[1, j].set_title(f"{encoder}: gender gap per corpus (95 % t-interval over folds)", fontsize=9)
    suptitle(fig, title)
    return fig


def write_cross_corpus_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> CrossCorpusReport:
    """Read the study's fold runs (one bulk query) and write ``cross_corpus.md/.csv/.png``.

    ``n_boot`` and ``seed`` are accepted for a uniform interface; this report's intervals are over folds.

    Raises:
        NoCrossCorpusError: no fold run logged ``xc_`` metrics; nothing is written.
    """
    cells = load_cells(tracker, study_name, encoders)
    listed = listed_corpora(cells)
    corpora = corpora_of([c for c in cells.frame.columns if c.startswith("xc_")], listed)
    if not corpora:
        hint = f" (data.eval_corpora lists {', '.join(listed)})" if listed else ""
        raise NoCrossCorpusError(
            f"study {study_name!r}: none of its {len(cells.frame)} finished fold runs logged cross-corpus metrics "
            f"(xc_<corpus>_war, xc_<corpus>_uar, ...){hint}; list evaluation corpora in the study's data table "
            "(data.eval_corpora) and run it to get a cross-corpus report"
        )
    frame = long_frame(cells, corpora)
    head = header(cells, tracker, f"{study_name}: cross-corpus — trained on one corpus, scored on others")
    in_name = head["data"].split(" (fingerprint")[0]  # the training corpus, as the header names it
    out = ReportFolder(out_root, study_name)
    fig = out.figure(
        "cross_corpus.png", figure(frame, corpora, in_name, f"{study_name} — {head['data']}\n{head['weights']}")
    )
    md = out.text("cross_corpus.md", markdown(frame, corpora, listed, head, in_name, [fig.name]))
    csv = out.csv("cross_corpus.csv", frame)
    page = out.publish(tracker, study_tags)
    return CrossCorpusReport(out.path, md, csv, (fig,), page, frame, tuple(corpora))
