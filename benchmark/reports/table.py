"""The paper's table, regenerated from logged runs: encoders x variants, WAR/UAR mean ± std over folds.

Each report file is written to a temporary file beside it and renamed over it, so a reader (or a process
killed midway) only ever sees a complete old file or a complete new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from benchmark import provenance
from benchmark.data.sources import READERS
from benchmark.faults import checkpoint
from benchmark.reports.plots import plt
from benchmark.studies import Paper
from benchmark.tracking import RunRecord, Tracker

VARIANT_NAMES = {"emo-clap": "Emo-CLAP", "sl-gemo-clap": "SL-GEmo-CLAP", "ml-gemo-clap": "ML-GEmo-CLAP"}

# Other systems on IEMOCAP's 4-class task, as PAPER.md lists them: frozen encoders, other heads or other
# splits, so context for a reproduction rather than rows to compare with. Percentages; None: not reported.
LITERATURE: tuple[dict, ...] = (
    {"system": "SUPERB ER, frozen WavLM-Large", "protocol": "as SUPERB defines it", "war": 70.03, "uar": None},
    {"system": "EmoBox, frozen WavLM-Large", "protocol": "leave-one-session-out", "war": 69.07, "uar": 69.47},
    {"system": "emotion2vec, linear head", "protocol": "leave-one-session-out", "war": 71.79, "uar": None},
    {"system": "GMP-ATL (the same authors), HuBERT", "protocol": "as reported", "war": 80.0, "uar": 82.0},
)


class ReportWriteError(OSError):
    """A report file or folder that cannot be written; the message names it and the OS reason."""


@dataclass(frozen=True)
class TableReport:
    folder: Path
    markdown: Path
    csv: Path
    png: Path
    frame: pd.DataFrame
    latex: Path


def cell_frame(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per finished fold run: configuration keys and final test metrics."""
    rows = []
    for r in runs:
        rows.append(
            {
                "encoder": r.params.get("audio_encoder"),
                "variant": r.params.get("variant"),
                "alpha": float(r.params.get("alpha", "1.0")),
                "ml_mode": r.params.get("ml_mode"),
                "seed": int(r.params.get("seed", "0")),
                "fold": int(r.params.get("fold", "0")),
                "war": r.metrics.get("test_war"),
                "uar": r.metrics.get("test_uar"),
                "data_source": r.tags.get("gemo.data_source", "unknown"),
                "weights": r.tags.get("gemo.weights", "unknown"),
                "git_sha": r.tags.get("gemo.git_sha", "unknown")
                + (" (dirty)" if r.tags.get("gemo.git_dirty") == "true" else ""),
                "data_fingerprint": r.tags.get("gemo.data_fingerprint", ""),
                "data_subset": r.params.get("data.subset", "all"),
            }
        )
    return pd.DataFrame(rows)


def summarize_table(cells: pd.DataFrame, encoders: Sequence[str], paper: Paper | None = None) -> pd.DataFrame:
    """Per encoder x variant x alpha: mean and sample std over folds, the seeds' spread, the paper's figures.

    ``paper``: the reported figures (the study's ``[paper]`` table; default: the abstract's one figure).

    A fold's figure is the mean of its seeds, so the std over folds is the folds' spread whatever the number
    of seeds (as in the ablation report). With several seeds, ``*_seed_std`` is the sample std over seeds of
    each seed's mean over its folds: how much the whole figure moves from one training run to the next.
    """
    keys = ["encoder", "variant", "alpha"]
    if "seed" not in cells:
        cells = cells.assign(seed=0)
    per_fold = cells.groupby([*keys, "fold"], sort=False)[["war", "uar"]].mean().reset_index()
    out = (
        per_fold.groupby(keys, sort=False)
        .agg(
            folds=("fold", "nunique"),
            war_mean=("war", "mean"),
            war_std=("war", "std"),
            uar_mean=("uar", "mean"),
            uar_std=("uar", "std"),
        )
        .reset_index()
    )
    out[["war_std", "uar_std"]] = out[["war_std", "uar_std"]].fillna(0.0)
    runs = cells.groupby(keys, sort=False).agg(runs=("fold", "size"), seeds=("seed", "nunique")).reset_index()
    per_seed = cells.groupby([*keys, "seed"], sort=False)[["war", "uar"]].mean().reset_index()
    spread = (
        per_seed.groupby(keys, sort=False).agg(war_seed_std=("war", "std"), uar_seed_std=("uar", "std")).reset_index()
    )
    out = out.merge(runs, on=keys).merge(spread, on=keys)
    out = out[
        [*keys, "folds", "runs", "seeds", "war_mean", "war_std", "uar_mean", "uar_std", "war_seed_std", "uar_seed_std"]
    ]
    paper = paper or Paper()
    for metric in ("war", "uar"):
        out[f"paper_{metric}"] = [
            (paper.figure(e, v) or {}).get(metric, np.nan) for e, v in zip(out["encoder"], out["variant"], strict=True)
        ]
        # our figures are fractions; the paper's are percentages
        out[f"diff_{metric}"] = 100 * out[f"{metric}_mean"] - out[f"paper_{metric}"]
    order = {e: i for i, e in enumerate(encoders)}
    vorder = {v: i for i, v in enumerate(VARIANT_NAMES)}
    out = out.sort_values(
        by=["encoder", "variant", "alpha"],
        key=lambda s: s.map(order) if s.name == "encoder" else (s.map(vorder) if s.name == "variant" else s),
    )
    return out.reset_index(drop=True)


def _pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown(table: pd.DataFrame, header: dict[str, str], expected_folds: int, paper: Paper | None = None) -> str:
    lines = [f"# {header['title']}", ""]
    for key in ("data", "weights", "git", "generated", "runs"):
        lines.append(f"- **{key}**: {header[key]}")
    seeded = bool((table["seeds"] > 1).any()) if "seeds" in table else False
    lines += [
        "",
        "WAR and UAR in %, mean ± sample std over folds (leave-one-session-out)"
        + (", each fold's figure the mean of its seeds" if seeded else "")
        + f". *Paper*: the paper's figures ({(paper or Paper()).source}); *Δ*: ours − paper."
        + (
            " *Seed std*: the sample std over seeds of each seed's mean over folds, in points: how far the "
            "figure moves from one training run to the next."
            if seeded
            else ""
        ),
        "",
    ]
    cols = ["encoder", "variant", "WAR", "UAR", "folds"]
    if seeded:
        cols += ["seeds", "seed std WAR", "seed std UAR"]
    cols += ["paper WAR", "paper UAR", "Δ WAR", "Δ UAR"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, r in table.iterrows():
        folds = f"{r['folds']}" + ("" if r["folds"] == expected_folds else f" of {expected_folds}")
        paper = [r["paper_war"], r["paper_uar"], r["diff_war"], r["diff_uar"]]
        paper_txt = ["–" if np.isnan(v) else (f"{v:+.2f}" if i >= 2 else f"{v:.2f}") for i, v in enumerate(paper)]
        variant = VARIANT_NAMES.get(r["variant"], r["variant"])
        if r["variant"] != "emo-clap":
            variant += f" (α={r['alpha']:g})"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["encoder"],
                    variant,
                    _pm(r["war_mean"], r["war_std"]),
                    _pm(r["uar_mean"], r["uar_std"]),
                    folds,
                    *(_seed_cells(r) if seeded else []),
                    *paper_txt,
                ]
            )
            + " |"
        )
    if header["data"].startswith("IEMOCAP"):
        lines += ["", *context_lines()]
    return "\n".join(lines) + "\n"


def context_lines() -> list[str]:
    """Other published systems on IEMOCAP's 4 classes (:data:`LITERATURE`), for a reproduction on IEMOCAP."""
    lines = [
        "## Context",
        "",
        "Other systems on IEMOCAP's 4 classes, as published (WAR / UAR in %). Frozen encoders, other heads or "
        "other splits: context for the figures above, not a comparison.",
        "",
        "| system | protocol | WAR | UAR |",
        "|---|---|---|---|",
    ]
    for row in LITERATURE:
        war, uar = (("–" if v is None else f"{v:.2f}") for v in (row["war"], row["uar"]))
        lines.append(f"| {row['system']} | {row['protocol']} | {war} | {uar} |")
    return lines


def _seed_cells(r: pd.Series) -> list[str]:
    spread = ["–" if np.isnan(r[f"{m}_seed_std"]) else f"{100 * r[f'{m}_seed_std']:.2f}" for m in ("war", "uar")]
    return [f"{r['seeds']}", *spread]


# LaTeX's special characters in text mode (hub ids and study names may hold _, &, #, ...)
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def latex(table: pd.DataFrame, header: dict[str, str], expected_folds: int, study_name: str) -> str:
    """The table as a LaTeX ``table`` float (booktabs) to paste into a paper.

    WAR and UAR in %, mean ± sample std over folds; per encoder the best mean of each metric is bold (every
    one that ties at two decimals). A configuration with fewer than ``expected_folds`` folds is marked †.
    Provenance (data, weights, commit) is in comments above the float and in its caption.
    """
    lines = [
        f"% {header['title']}: written by gemo-bench from logged runs; needs \\usepackage{{booktabs}}",
        *(f"% {key}: {' '.join(header[key].split())}" for key in ("data", "weights", "git", "generated", "runs")),
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{llcc}",
        r"\toprule",
        r"Encoder & Method & WAR (\%) & UAR (\%) \\",
    ]
    partial = False
    for encoder, rows in table.groupby("encoder", sort=False):
        best = {m: round(100 * rows[f"{m}_mean"].max(), 2) for m in ("war", "uar")}
        lines.append(r"\midrule")
        for i, (_, r) in enumerate(rows.iterrows()):
            method = VARIANT_NAMES.get(r["variant"], tex_escape(str(r["variant"])))
            if r["variant"] != "emo-clap":
                method += f" ($\\alpha={r['alpha']:g}$)"
            if r["folds"] != expected_folds:
                method += r"$^\dagger$"
                partial = True
            cells = []
            for m in ("war", "uar"):
                mean = round(100 * r[f"{m}_mean"], 2)
                value = f"\\mathbf{{{mean:.2f}}}" if mean == best[m] else f"{mean:.2f}"
                cells.append(f"${value} \\pm {100 * r[f'{m}_std']:.2f}$")
            lines.append(f"{tex_escape(str(encoder)) if i == 0 else ''} & {method} & {' & '.join(cells)} \\\\")
    caption = (
        f"{tex_escape(header['title'])}. WAR and UAR in \\%, mean $\\pm$ sample standard deviation over "
        f"{expected_folds} folds; the best mean of each encoder in bold. Data: {tex_escape(header['data'])}. "
        f"Weights: {tex_escape(header['weights'])}."
    )
    seeds = int(table["seeds"].max()) if "seeds" in table and len(table) else 1
    if seeds > 1:
        caption += f" Each fold's figure is the mean of its seeds (up to {seeds})."
    if partial:
        caption += f" $^\\dagger$Fewer than {expected_folds} folds finished."
    label = re.sub(r"[^A-Za-z0-9:._-]", "-", study_name)
    lines += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{caption}}}", f"\\label{{tab:{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, title: str, path: Path) -> Path:
    """Grouped bars: UAR and WAR per encoder, one bar per variant/alpha, error bars = std over folds."""
    labels = [
        VARIANT_NAMES.get(v, v) + ("" if v == "emo-clap" else f" α={a:g}")
        for v, a in zip(table["variant"], table["alpha"], strict=True)
    ]
    table = table.assign(label=labels)
    encoders = list(dict.fromkeys(table["encoder"]))
    series = list(dict.fromkeys(labels))
    fig, axes = plt.subplots(1, 2, figsize=(max(7, 2.2 * len(encoders) + 3), 4.2), dpi=110, sharey=True)
    width = 0.8 / max(1, len(series))
    for ax, metric in zip(axes, ("uar", "war"), strict=True):
        for k, s in enumerate(series):
            sub = table[table["label"] == s].set_index("encoder").reindex(encoders)
            ax.bar(
                np.arange(len(encoders)) + k * width - 0.4 + width / 2,
                100 * sub[f"{metric}_mean"],
                width,
                yerr=100 * sub[f"{metric}_std"],
                capsize=3,
                label=s,
            )
        ax.set_xticks(range(len(encoders)), encoders, rotation=15)
        ax.set_ylabel(f"{metric.upper()} (%)")
        ax.set_title(f"{metric.upper()}, mean ± std over folds")
        ax.axhline(25, color="grey", lw=0.8, ls=":", label="chance (4 classes)" if metric == "uar" else None)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png"), binary=True)
    finally:
        plt.close(fig)
    return path


def describe_source(cells: pd.DataFrame) -> dict[str, str]:
    sources = sorted(set(cells["data_source"]))
    data = {name: reader.title for name, reader in READERS.items()}
    data["embedded"] = "embedded corpus (generated, IEMOCAP format)"
    fps = ", ".join(sorted(set(cells["data_fingerprint"])))
    weights = "; ".join(sorted(set(cells["weights"])))
    shas = sorted(set(cells["git_sha"]))
    subsets = sorted(set(cells["data_subset"])) if "data_subset" in cells else ["all"]
    dialogs = "" if subsets == ["all"] else f", dialogs: {' + '.join(subsets)}"
    return {
        "data": " + ".join(data.get(s, s) for s in sources) + f"{dialogs} (fingerprint {fps})",
        "weights": weights,
        "git": ", ".join(s[:12] for s in shas),
    }


def write_table_report(
    tracker: Tracker,
    study_name: str,
    encoders: Sequence[str],
    expected_folds: int,
    out_root: Path,
    study_tags: dict[str, str] | None = None,
    paper: Paper | None = None,
) -> TableReport:
    """Read the study's finished fold runs (one bulk query) and write ``table.md``, ``.csv``, ``.tex``, ``.png``.

    ``paper``: the figures to show beside ours (the study's ``[paper]`` table; default: the abstract's).
    """
    runs = tracker.read_runs("cell", "FINISHED")
    if not runs:
        raise ValueError(f"study {study_name!r}: no finished runs in {tracker.uri}; run `gemo-bench run` first")
    cells = cell_frame(runs)
    table = summarize_table(cells, encoders, paper)
    header = {
        "title": f"{study_name}: Emo-CLAP vs GEmo-CLAP",
        **describe_source(cells),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        + f" by gemo-bench {provenance.versions()['gemo-bench']}",
        "runs": f"{len(runs)} finished fold runs from {provenance.redact_uri(tracker.uri)}",
    }
    folder = out_root / study_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportWriteError(f"{folder}: cannot create the report folder: {exc.strerror or exc}") from exc
    remove_stale_temporaries(folder)
    md = folder / "table.md"
    text = markdown(table, header, expected_folds, paper)
    write_atomic(md, lambda f: f.write(text))
    checkpoint("report-midway")
    csv = folder / "table.csv"
    write_atomic(csv, lambda f: table.to_csv(f, index=False, float_format="%.6f"))
    checkpoint("report-midway")
    tex = folder / "table.tex"
    latex_text = latex(table, header, expected_folds, study_name)
    write_atomic(tex, lambda f: f.write(latex_text))
    checkpoint("report-midway")
    png = figure(table, f"{study_name} — {header['data']}\n{header['weights']}", folder / "table.png")
    run_id = tracker.study_run(study_name, study_tags or {})
    with tempfile.TemporaryDirectory() as tmp:
        for p in (md, csv, tex, png):
            (Path(tmp) / p.name).write_bytes(p.read_bytes())
        tracker.log_artifacts(run_id, Path(tmp), "reports")
    return TableReport(folder, md, csv, png, table, tex)


# `.table.md.<pid>.<random>.tmp`: the pid tells a later run whether the writer is still alive.
_TEMPORARY_RE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp")


def write_atomic(path: Path, write: Callable[[IO], object], *, binary: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename it over ``path``.

    Raises:
        ReportWriteError: the folder is read-only, the disk is full, ...; the message names ``path`` and
            the OS reason, and no temporary file is left behind.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        raise ReportWriteError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
    try:
        with open(fd, "wb") if binary else open(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be read
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ReportWriteError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files left in ``folder`` by report writers that were killed before renaming them."""
    for path in folder.glob(".*.tmp"):
        match = _TEMPORARY_RE.fullmatch(path.name)
        if match and not _alive(int(match["pid"])):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
