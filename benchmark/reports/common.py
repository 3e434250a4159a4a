"""What every report shares: the study's fold runs as a frame, configurations, predictions, headers, output.

A *configuration* is everything a fold run was trained with except its fold and seed: the audio encoder,
the variant, alpha, and any other logged parameter that varies between runs of the same encoder, variant
and alpha (the temperature in a temperature sweep, say). Seeds of one fold are averaged before statistics
over folds.

All MLflow access goes through :class:`benchmark.tracking.Tracker`: one bulk query for the runs, and one bulk
artifact read for the predictions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import provenance
from benchmark.data.records import CLASS_WORDS, CLASSES, GENDERS
from benchmark.reports import html
from benchmark.reports.plots import plt
from benchmark.reports.table import (
    VARIANT_NAMES,
    ReportWriteError,
    cell_frame,
    describe_source,
    remove_stale_temporaries,
    write_atomic,
)
from benchmark.tracking import RunRecord, Tracker

# Parameters that never define a configuration: the fold and seed are its replicates; the data fields
# are the study's (a changed corpus is a different study); the rest are logged for the record.
_NOT_CONFIG = {"fold", "seed"}
# Friendlier names for parameters that commonly vary.
PARAM_NAMES = {
    "model.temperature": "T",
    "model.learnable_temperature": "learned T",
    "ml_mode": "ML mode",
    "target_norm": "targets",
    "train.lr": "lr",
    "train.epochs": "epochs",
}
VARIANT_ORDER = {v: i for i, v in enumerate(VARIANT_NAMES)}


class NoRunsError(ValueError):
    """A report asked of a study with nothing to report; the message says what is missing and what to run."""


@dataclass(frozen=True)
class Cells:
    """The study's finished fold runs, one row each, with configuration keys and final metrics.

    Attributes:
        frame: columns ``run_id, config, encoder, variant, alpha, <extras>, seed, fold, label`` and every
            logged metric; plus the provenance columns of :func:`benchmark.reports.table.cell_frame`.
        extras: parameters besides encoder/variant/alpha that tell configurations apart.
        runs: the run records by id (for artifact reads).
    """

    frame: pd.DataFrame
    extras: tuple[str, ...]
    runs: Mapping[str, RunRecord]

    def configs(self) -> pd.DataFrame:
        """One row per configuration, in report order: ``config, encoder, variant, alpha, <extras>, label``."""
        cols = ["config", "encoder", "variant", "alpha", *self.extras, "label"]
        return self.frame[cols].drop_duplicates("config").reset_index(drop=True)

    def per_fold(self, metrics: Sequence[str]) -> pd.DataFrame:
        """Metric means over seeds for each configuration and fold (missing metrics are NaN)."""
        present = [m for m in metrics if m in self.frame]
        out = self.frame.groupby(["config", "fold"], sort=False)[present].mean()
        return out.reindex(columns=list(metrics)).reset_index()

    def summary(self, metrics: Sequence[str]) -> pd.DataFrame:
        """Per configuration: folds, mean and sample std over folds of each metric (std 0 with one fold)."""
        folds = self.per_fold(metrics)
        grouped = folds.groupby("config", sort=False)
        out = grouped.size().rename("folds").to_frame()
        for m in metrics:
            out[f"{m}_mean"] = grouped[m].mean()
            out[f"{m}_std"] = grouped[m].std(ddof=1).fillna(0.0)
        return self.configs().merge(out.reset_index(), on="config", how="left")

    def baseline_of(self, config: str) -> str | None:
        """The Emo-CLAP configuration to compare ``config`` with: same encoder, same varying parameters.

        Parameters that do not vary among that encoder's Emo-CLAP runs (the ML mode, say) are ignored.
        """
        row = self.frame.loc[self.frame["config"] == config].iloc[0]
        base = self.frame[(self.frame["variant"] == "emo-clap") & (self.frame["encoder"] == row["encoder"])]
        for key in self.extras:
            if base[key].nunique() > 1:
                base = base[base[key] == row[key]]
        found = base["config"].unique()
        return str(found[0]) if len(found) == 1 else None


def load_cells(tracker: Tracker, study_name: str, encoders: Sequence[str] = ()) -> Cells:
    """The study's finished fold runs, in one bulk query.

    Raises:
        NoRunsError: no finished fold run in the store.
    """
    runs = tracker.runs("cell", "FINISHED")
    if not runs:
        raise NoRunsError(
            f"study {study_name!r}: no finished runs in {provenance.redact_uri(tracker.uri)}; "
            "run `gemo-bench run STUDY` first"
        )
    frame = cell_frame(runs).drop(columns=["war", "uar", "ml_mode"])
    frame.insert(0, "run_id", [r.run_id for r in runs])
    params = pd.DataFrame([r.params for r in runs]).astype(str)
    keys = ["encoder", "variant", "alpha"]
    candidates = [c for c in params.columns if c not in _NOT_CONFIG and c not in ("audio_encoder", "variant", "alpha")]
    grouped = params.assign(**{k: frame[k].astype(str) for k in keys}).groupby(keys)
    varying = grouped[candidates].nunique(dropna=False).max() if candidates else pd.Series(dtype=int)
    extras = tuple(sorted(c for c in candidates if varying.get(c, 1) > 1))
    for key in extras:
        frame[key] = params[key].to_numpy()
    metrics = pd.DataFrame([r.metrics for r in runs])
    frame = pd.concat([frame, metrics], axis=1)
    frame["label"] = [config_label(r["variant"], r["alpha"], {k: r[k] for k in extras}) for _, r in frame.iterrows()]
    # the study's encoder order, then any other encoder found in the store
    seen = [*encoders, *sorted(set(frame["encoder"]) - set(encoders))]
    order = {e: i for i, e in enumerate(seen)}
    frame = frame.sort_values(
        ["encoder", "variant", *extras, "alpha", "seed", "fold"],
        key=lambda s: s.map(order) if s.name == "encoder" else (s.map(VARIANT_ORDER) if s.name == "variant" else s),
        kind="stable",
    ).reset_index(drop=True)
    frame.insert(1, "config", frame["encoder"] + " | " + frame["label"])
    return Cells(frame, extras, {r.run_id: r for r in runs})


def config_label(variant: str, alpha: float, extras: Mapping[str, str] | None = None) -> str:
    """``SL-GEmo-CLAP α=0.8`` (+ ``T=0.05`` for each varying parameter); Emo-CLAP has no alpha."""
    text = VARIANT_NAMES.get(variant, variant)
    if variant != "emo-clap":
        text += f" α={float(alpha):g}"
    for key, value in (extras or {}).items():
        text += f" {PARAM_NAMES.get(key, key)}={value}"
    return text


# ---- predictions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Predictions:
    """Test predictions of many runs, as integer codes.

    Attributes:
        run: index into ``run_ids`` of each row; ``speaker``: index into ``speakers``.
        y_true, y_pred: class indices into :data:`CLASSES`.
        speakers: speaker ids; ``speaker_gender``: the gender of each speaker.
        missing: runs without the artifact (left out).
    """

    run_ids: tuple[str, ...]
    run: np.ndarray
    speaker: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    speakers: tuple[str, ...]
    speaker_gender: np.ndarray
    missing: tuple[str, ...] = ()
    gender: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gender", self.speaker_gender[self.speaker] if len(self.speaker) else np.array([]))

    def confusions(self, run_group: Mapping[str, int], n_groups: int) -> np.ndarray:
        """``[n_groups, S, K, K]`` confusion counts per group of runs (a configuration) and speaker."""
        group_of_run = np.array([run_group.get(r, -1) for r in self.run_ids], dtype=int)
        g = group_of_run[self.run] if len(self.run) else np.array([], dtype=int)
        keep = g >= 0
        k, s = len(CLASSES), len(self.speakers)
        flat = ((g[keep] * s + self.speaker[keep]) * k + self.y_true[keep]) * k + self.y_pred[keep]
        counts = np.bincount(flat, minlength=n_groups * s * k * k)
        return counts.reshape(n_groups, s, k, k).astype(float)


def load_predictions(tracker: Tracker, runs: Iterable[RunRecord], path: str = "predictions.csv") -> Predictions:
    """Read ``path`` (columns id, speaker, gender, emotion, predicted) of every run in one bulk read.

    Raises:
        ValueError: a file with other columns, an unknown class or gender, or a speaker given two genders;
            the message names the run and the file.
    """
    runs = list(runs)
    blobs = tracker.read_artifacts(runs, path)
    code = {c: i for i, c in enumerate(CLASSES)}
    run_ids = tuple(r.run_id for r in runs if r.run_id in blobs)
    speaker_index: dict[str, int] = {}
    speaker_gender: dict[str, str] = {}
    run_col, spk_col, true_col, pred_col = [], [], [], []
    for i, run_id in enumerate(run_ids):
        where = f"run {run_id}: {path}"
        reader = csv.reader(io.StringIO(blobs[run_id].decode("utf-8")))
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:5]] != ["id", "speaker", "gender", "emotion", "predicted"]:
            raise ValueError(f"{where}: expected columns id,speaker,gender,emotion,predicted, got {header}")
        n = 0
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            _, speaker, gender, emotion, predicted = row[:5]
            if emotion not in code or predicted not in code:
                bad = emotion if emotion not in code else predicted
                raise ValueError(f"{where}, line {line}: unknown class {bad!r} (expected one of {', '.join(CLASSES)})")
            if gender not in GENDERS:
                raise ValueError(f"{where}, line {line}: unknown gender {gender!r} (expected F or M)")
            if speaker_gender.setdefault(speaker, gender) != gender:
                raise ValueError(f"{where}, line {line}: speaker {speaker!r} is {gender} here but elsewhere not")
            spk_col.append(speaker_index.setdefault(speaker, len(speaker_index)))
            true_col.append(code[emotion])
            pred_col.append(code[predicted])
            n += 1
        run_col.extend([i] * n)
    speakers = tuple(speaker_index)
    return Predictions(
        run_ids=run_ids,
        run=np.asarray(run_col, dtype=int),
        speaker=np.asarray(spk_col, dtype=int),
        y_true=np.asarray(true_col, dtype=int),
        y_pred=np.asarray(pred_col, dtype=int),
        speakers=speakers,
        speaker_gender=np.asarray([speaker_gender[s] for s in speakers]),
        missing=tuple(r.run_id for r in runs if r.run_id not in blobs),
    )


# ---- header and output ---------------------------------------------------------------------------------


def header(cells: Cells, tracker: Tracker, title: str) -> dict[str, str]:
    """Which face produced the report (data source, weights), code version, time and run count."""
    return {
        "title": title,
        **describe_source(cells.frame),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        + f" by gemo-bench {provenance.versions()['gemo-bench']}",
        "runs": f"{len(cells.frame)} finished fold runs from {provenance.redact_uri(tracker.uri)}",
    }


def header_lines(head: Mapping[str, str]) -> list[str]:
    lines = [f"# {head['title']}", ""]
    for key in ("data", "weights", "git", "generated", "runs"):
        if key in head:
            lines.append(f"- **{key}**: {head[key]}")
    return [*lines, ""]


class ReportFolder:
    """``<out>/<study>/``: files written atomically, remembered for logging to the study's run."""

    def __init__(self, out_root: Path, study_name: str) -> None:
        self.study_name = study_name
        self.path = Path(out_root) / study_name
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReportWriteError(f"{self.path}: cannot create the report folder: {exc.strerror or exc}") from exc
        remove_stale_temporaries(self.path)
        self.files: list[Path] = []

    def text(self, name: str, text: str) -> Path:
        return self._keep(name, lambda f: f.write(text))

    def csv(self, name: str, frame: pd.DataFrame) -> Path:
        return self._keep(name, lambda f: frame.to_csv(f, index=False))

    def figure(self, name: str, fig) -> Path:
        try:
            return self._keep(name, lambda f: fig.savefig(f, format="png"), binary=True)
        finally:
            plt.close(fig)

    def _keep(self, name: str, write, binary: bool = False) -> Path:
        path = self.path / name
        write_atomic(path, write, binary=binary)
        if path not in self.files:
            self.files.append(path)
        return path

    def publish(self, tracker: Tracker, study_tags: Mapping[str, str] | None = None) -> Path:
        """Rebuild the study's HTML page from every report in the folder and log both to the study's run."""
        page = self.path / "index.html"
        text = html.study_page(self.path, self.study_name)
        write_atomic(page, lambda f: f.write(text))
        run_id = tracker.study_run(self.study_name, dict(study_tags or {}))
        tracker.log_files(run_id, [*self.files, page], "reports")
        return page


# ---- formatting ----------------------------------------------------------------------------------------


def pct(x: float, digits: int = 2) -> str:
    """A fraction as percent, ``–`` for a missing value."""
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def pm(mean: float, std: float) -> str:
    return f"{pct(mean)} ± {pct(std)}"


def signed(x: float, digits: int = 2) -> str:
    """Percentage points with a sign: ``+1.25``."""
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:+.{digits}f}"


def ci(low: float, high: float, digits: int = 2) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "–"
    return f"[{100 * low:+.{digits}f}, {100 * high:+.{digits}f}]"


def pval(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def md_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def suptitle(fig, text: str, width_chars: int | None = None) -> None:
    """A figure title wrapped to the figure's width, so long data descriptions are never cut off."""
    width = width_chars or int(fig.get_figwidth() * 13)
    lines = [w for line in text.split("\n") for w in (textwrap.wrap(line, width) or [""])]
    fig.suptitle("\n".join(lines), fontsize=9)


def class_names() -> list[str]:
    return [CLASS_WORDS[c] for c in CLASSES]
