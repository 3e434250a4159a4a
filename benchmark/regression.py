"""Regression check: run a small study afresh and compare every cell's WAR/UAR with a committed baseline.

The baseline (``reports/baselines/<study>.json``) records, per cell (encoder, variant, alpha, ML mode,
seed, fold), the test WAR and UAR, plus the tolerances and the package versions and commit it was made
with. CPU runs are deterministic for a given machine and package set, so a change that moves a number
by more than the tolerance is a change in what the code computes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark import provenance
from benchmark.tracking import RunRecord

METRICS = ("war", "uar")
KEY_FIELDS = ("encoder", "variant", "alpha", "ml_mode", "seed", "fold")
# About one test utterance of a 40-utterance fold (1/40 = 0.025 WAR) is *not* tolerated: any changed
# prediction on the CI subset moves WAR by >= 0.025. The margin only absorbs float noise across CPUs.
DEFAULT_TOLERANCE = {"war": 0.02, "uar": 0.02}


class BaselineError(ValueError):
    """A baseline file that is missing or unreadable; the message names it."""


@dataclass(frozen=True)
class Row:
    key: tuple
    metric: str
    baseline: float | None
    current: float | None
    tolerance: float

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def ok(self) -> bool:
        return self.delta is not None and abs(self.delta) <= self.tolerance + 1e-12


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]


def cell_key(params: dict) -> tuple:
    return (
        params["encoder"],
        params["variant"],
        round(float(params["alpha"]), 6),
        params["ml_mode"] if params["variant"] == "ml-gemo-clap" else "",
        int(params["seed"]),
        int(params["fold"]),
    )


def results_from_runs(runs: Sequence[RunRecord]) -> dict[tuple, dict[str, float]]:
    """Per cell key, the final test WAR/UAR of each finished fold run."""
    out = {}
    for r in runs:
        params = {
            "encoder": r.params["audio_encoder"],
            "variant": r.params["variant"],
            "alpha": r.params["alpha"],
            "ml_mode": r.params.get("ml_mode", ""),
            "seed": r.params["seed"],
            "fold": r.params["fold"],
        }
        out[cell_key(params)] = {m: r.metrics[f"test_{m}"] for m in METRICS}
    return out


def load_baseline(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BaselineError(
            f"{path}: no baseline; create it on purpose with `gemo-bench regression STUDY --update-baseline`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data.get("cells"), list) or not isinstance(data.get("tolerance"), dict):
        raise BaselineError(f"{path}: expected keys 'cells' (a list) and 'tolerance' (a table)")
    return data


def baseline_results(data: dict) -> dict[tuple, dict[str, float]]:
    return {cell_key(c): {m: float(c[m]) for m in METRICS} for c in data["cells"]}


def compare(
    current: dict[tuple, dict[str, float]], baseline: dict[tuple, dict[str, float]], tolerance: dict[str, float]
) -> Comparison:
    """Every metric of every cell in either set; a cell missing on one side fails."""
    rows = []
    for key in sorted(set(current) | set(baseline), key=str):
        for m in METRICS:
            rows.append(Row(key, m, baseline.get(key, {}).get(m), current.get(key, {}).get(m), float(tolerance[m])))
    return Comparison(tuple(rows))


def describe_key(key: tuple) -> str:
    encoder, variant, alpha, ml_mode, seed, fold = key
    text = f"{encoder} {variant}"
    if variant != "emo-clap":
        text += f" a={alpha:g}"
    if ml_mode:
        text += f" {ml_mode}"
    return f"{text} seed {seed} fold {fold}"


def format_table(comparison: Comparison, only_failures: bool = True) -> str:
    """A plain-text table of what moved and by how much."""
    rows = comparison.failures if only_failures else list(comparison.rows)
    header = ("cell", "metric", "baseline", "now", "change", "tolerance", "")
    lines = [header]
    for r in rows:
        lines.append(
            (
                describe_key(r.key),
                r.metric.upper(),
                "missing" if r.baseline is None else f"{r.baseline:.4f}",
                "missing" if r.current is None else f"{r.current:.4f}",
                "" if r.delta is None else f"{r.delta:+.4f}",
                f"±{r.tolerance:.4f}",
                "ok" if r.ok else "MOVED" if r.delta is not None else "MISSING",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_baseline(
    path: Path, study_name: str, current: dict[tuple, dict[str, float]], tolerance: dict[str, float]
) -> None:
    """Write the baseline atomically, with the versions and commit that produced it."""
    sha, dirty = provenance.git_state()
    cells = []
    for key in sorted(current, key=str):
        encoder, variant, alpha, ml_mode, seed, fold = key
        values = current[key]
        if not all(math.isfinite(values[m]) for m in METRICS):
            raise ValueError(f"{describe_key(key)}: non-finite metric {values}")
        cells.append(
            {
                "encoder": encoder,
                "variant": variant,
                "alpha": alpha,
                "ml_mode": ml_mode,
                "seed": seed,
                "fold": fold,
                **{m: round(values[m], 6) for m in METRICS},
            }
        )
    data = {
        "study": study_name,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_sha": sha + (" (dirty)" if dirty else ""),
        "versions": provenance.versions(),
        "tolerance": tolerance,
        "cells": cells,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
