"""What every report shares: the study's fold runs as a frame, configurations, predictions, headers, output.

A *configuration* is everything a fold run was trained with except its fold and seed: the audio encoder,
the variant, alpha, and any other logged parameter that varies between runs of the same encoder, variant
and alpha (the temperature in a temperature sweep, say). Seeds of one fold are averaged before statistics
over folds.

All MLflow access goes through :class:`benchmark.tracking.Tracker`: one bulk query for the runs, and one bulk
artifact read for the predictions.
"""

from __future__ import annotations

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
from benchmark.data.records import CLASS_WORDS, CLASSES, GENDERS, PREDICTION_COLUMNS
from benchmark.reports import html, stats
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
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def configs(self) -> pd.DataFrame:
        """One row per configuration, in report order: ``config, encoder, variant, alpha, <extras>, label``."""
        cols = ["config", "encoder", "variant", "alpha", *self.extras, "label"]
        return self.frame[cols].drop_duplicates("config").reset_index(drop=True)

    def per_fold(self, metrics: Sequence[str]) -> pd.DataFrame:
        """Metric means over seeds for each configuration and fold (missing metrics are NaN)."""
        key = ("per_fold", tuple(metrics))
        if key not in self._cache:
            present = [m for m in metrics if m in self.frame]
            out = self.frame.groupby(["config", "fold"], sort=False)[present].mean()
            self._cache[key] = out.reindex(columns=list(metrics)).reset_index()
        return self._cache[key].copy()

    def fold_values(self, config: str, metric: str) -> pd.Series:
        """``metric`` per fold (seeds averaged) of one configuration, missing folds dropped."""
        key = ("fold_values", metric)
        if key not in self._cache:
            folds = self.per_fold([metric])
            self._cache[key] = {c: g.set_index("fold")[metric].dropna() for c, g in folds.groupby("config", sort=False)}
        return self._cache[key].get(config, pd.Series(dtype=float))

    def members(self, config: str) -> list[tuple[str, int, int]]:
        """``(run_id, fold, seed)`` of each fold run of ``config``."""
        if "members" not in self._cache:
            f = self.frame
            groups: dict[str, list[tuple[str, int, int]]] = {}
            for cfg, run_id, fold, seed in zip(f["config"], f["run_id"], f["fold"], f["seed"], strict=True):
                groups.setdefault(cfg, []).append((run_id, int(fold), int(seed)))
            self._cache["members"] = groups
        return self._cache["members"].get(config, [])

    def fold_seed_keys(self, config: str) -> set[tuple[int, int]]:
        return {(fold, seed) for _, fold, seed in self.members(config)}

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
        configs = self._cache.setdefault("configs", self.configs().set_index("config"))
        row = configs.loc[config]
        base = configs[(configs["variant"] == "emo-clap") & (configs["encoder"] == row["encoder"])]
        for key in self.extras:
            if base[key].nunique() > 1:
                base = base[base[key] == row[key]]
        return str(base.index[0]) if len(base) == 1 else None


SIGNIFICANT = 0.05  # the p-value of a paired t-test below which a difference gets a reading


@dataclass(frozen=True)
class MeasureDifference:
    """A gender-aware configuration's measure minus Emo-CLAP's, paired over folds (:func:`measure_differences`).

    ``rise`` and ``fall`` say what a significant rise and a significant fall of the measure mean.
    """

    config: str
    baseline: str
    measure: str
    test: stats.PairedTest
    rise: str
    fall: str

    @property
    def reading(self) -> str:
        p = self.test.p_t
        if p is None or p >= SIGNIFICANT:
            return "no significant change"
        return self.rise if self.test.mean_diff > 0 else self.fall


def measure_differences(cells: Cells, compared: Sequence[tuple[str, str, str]]) -> list[MeasureDifference]:
    """Each gender-aware configuration against Emo-CLAP of the same encoder, paired over the folds both have, on
    each ``(measure column, what a rise means, what a fall means)`` of ``compared``."""
    out = []
    for config in cells.configs().query("variant != 'emo-clap'")["config"]:
        base = cells.baseline_of(config)
        if base is None:
            continue
        for measure, rise, fall in compared:
            a, b = cells.fold_values(config, measure), cells.fold_values(base, measure)
            common = sorted(set(a.index) & set(b.index))
            test = stats.paired_tests(a.loc[common], b.loc[common])
            out.append(MeasureDifference(config, base, measure, test, rise, fall))
    return out


def load_cells(tracker: Tracker, study_name: str, encoders: Sequence[str] = ()) -> Cells:
    """The study's finished fold runs, in one bulk query.

    Raises:
        NoRunsError: no finished fold run in the store.
    """
    runs = tracker.read_runs("cell", "FINISHED")
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
        agreeing, evaluators: each row's label agreement (``agreeing`` of ``evaluators`` named its class);
            0 evaluators where it is unknown (a corpus without votes, or a file without the column).
    """

    run_ids: tuple[str, ...]
    run: np.ndarray
    speaker: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    speakers: tuple[str, ...]
    speaker_gender: np.ndarray
    missing: tuple[str, ...] = ()
    agreeing: np.ndarray | None = None
    evaluators: np.ndarray | None = None
    gender: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gender", self.speaker_gender[self.speaker] if len(self.speaker) else np.array([]))
        for name in ("agreeing", "evaluators"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(len(self.speaker), dtype=int))

    def confusions(self, run_group: Mapping[str, int], n_groups: int) -> np.ndarray:
        """``[n_groups, S, K, K]`` confusion counts per group of runs (a configuration) and speaker."""
        group_of_run = np.array([run_group.get(r, -1) for r in self.run_ids], dtype=int)
        g = group_of_run[self.run] if len(self.run) else np.array([], dtype=int)
        keep = g >= 0
        k, s = len(CLASSES), len(self.speakers)
        flat = ((g[keep] * s + self.speaker[keep]) * k + self.y_true[keep]) * k + self.y_pred[keep]
        counts = np.bincount(flat, minlength=n_groups * s * k * k)
        return counts.reshape(n_groups, s, k, k).astype(float)


_PREDICTION_COLUMNS = list(PREDICTION_COLUMNS)
_OLD_PREDICTION_COLUMNS = _PREDICTION_COLUMNS[:5]  # runs logged before the agreement column


def load_predictions(tracker: Tracker, runs: Iterable[RunRecord], path: str = "predictions.csv") -> Predictions:
    """Read ``path`` (columns id, speaker, gender, emotion, predicted[, agreement]) of every run in one bulk read.

    The files are parsed together by pandas' C parser (a million rows in well under a second). A file without
    the agreement column (logged before it existed) reads as unknown agreement.

    Raises:
        ValueError: a file with other columns, an unknown class or gender, or a speaker given two genders;
            the message names the run, the file and the line.
    """
    runs = list(runs)
    blobs = tracker.read_artifacts(runs, path)
    run_ids = tuple(r.run_id for r in runs if r.run_id in blobs)
    bodies, counts = [], []
    for run_id in run_ids:
        head, _, body = blobs[run_id].partition(b"\n")
        columns = [c.strip() for c in head.decode("utf-8", "replace").split(",")]
        if columns not in (_PREDICTION_COLUMNS, _OLD_PREDICTION_COLUMNS):
            raise ValueError(f"run {run_id}: {path}: expected columns {','.join(_PREDICTION_COLUMNS)}, got {columns}")
        if body and not body.endswith(b"\n"):
            body += b"\n"
        if columns == _OLD_PREDICTION_COLUMNS:
            body = body.replace(b"\r\n", b"\n").replace(b"\n", b",\n")  # an empty agreement on every line
        bodies.append(body)
        counts.append(body.count(b"\n"))
    # categories, not strings: a million rows parse in a fraction of a second; ids are not needed
    frame = pd.read_csv(
        io.BytesIO(b"".join(bodies)),
        header=None,
        names=_PREDICTION_COLUMNS,
        usecols=_PREDICTION_COLUMNS[1:],
        dtype="category",
        keep_default_na=False,
        skip_blank_lines=False,
        encoding="utf-8",
    )
    run = np.repeat(np.arange(len(run_ids)), counts)
    line = np.concatenate([np.arange(2, n + 2) for n in counts]) if counts else np.array([], dtype=int)
    speaker_codes = frame["speaker"].cat.codes.to_numpy()
    speaker_names = frame["speaker"].cat.categories.astype(str)
    blank = (speaker_codes < 0) | np.isin(speaker_codes, np.flatnonzero(speaker_names == ""))
    if blank.any():  # blank lines
        keep = ~blank
        frame, run, line = frame[keep].reset_index(drop=True), run[keep], line[keep]
        speaker_codes = speaker_codes[keep]

    def fail(row: int, what: str) -> None:
        raise ValueError(f"run {run_ids[run[row]]}: {path}, line {line[row]}: {what}")

    y_true = frame["emotion"].cat.set_categories(CLASSES).cat.codes.to_numpy().astype(int)
    y_pred = frame["predicted"].cat.set_categories(CLASSES).cat.codes.to_numpy().astype(int)
    for col, codes in (("emotion", y_true), ("predicted", y_pred)):
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            fail(row, f"unknown class {frame.loc[row, col]!r} (expected one of {', '.join(CLASSES)})")
    gender = frame["gender"].cat.set_categories(GENDERS).cat.codes.to_numpy().astype(int)
    if (gender < 0).any():
        row = int(np.flatnonzero(gender < 0)[0])
        fail(row, f"unknown gender {frame.loc[row, 'gender']!r} (expected F or M)")
    agreeing, evaluators = _agreement(frame["agreement"], fail)
    # compact speaker indices, in order of first appearance
    used, first_row, speaker = np.unique(speaker_codes, return_index=True, return_inverse=True)
    order = np.argsort(first_row, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    speaker = rank[speaker]
    speakers = tuple(speaker_names[used[order]])
    first_gender = gender[first_row[order]]
    clash = gender != first_gender[speaker]
    if clash.any():
        row = int(np.flatnonzero(clash)[0])
        fail(row, f"speaker {frame.loc[row, 'speaker']!r} is {frame.loc[row, 'gender']} here but elsewhere not")
    return Predictions(
        run_ids=run_ids,
        run=run.astype(int),
        speaker=np.asarray(speaker, dtype=int),
        y_true=y_true,
        y_pred=y_pred,
        speakers=speakers,
        speaker_gender=np.asarray(GENDERS)[first_gender] if len(speakers) else np.array([], dtype=str),
        missing=tuple(r.run_id for r in runs if r.run_id not in blobs),
        agreeing=agreeing,
        evaluators=evaluators,
    )


def _agreement(column: pd.Series, fail) -> tuple[np.ndarray, np.ndarray]:
    """``k/n`` (or empty) per row as two int arrays, parsed once per distinct value."""
    values = column.cat.categories.astype(str)
    parsed = np.zeros((len(values) + 1, 2), dtype=int)  # the last row: a missing value (code -1)
    for i, text in enumerate(values):
        if text == "":
            continue
        k, sep, n = text.partition("/")
        if not (sep and k.isdigit() and n.isdigit() and 0 <= int(k) <= int(n) and int(n) > 0):
            fail(int(np.flatnonzero(column.cat.codes.to_numpy() == i)[0]), f"bad agreement {text!r} (expected k/n)")
        parsed[i] = int(k), int(n)
    rows = parsed[column.cat.codes.to_numpy()]
    return rows[:, 0], rows[:, 1]


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
            # zlib's fastest level: less encoding time, and these flat-colour plots come out no larger
            return self._keep(
                name, lambda f: fig.savefig(f, format="png", pil_kwargs={"compress_level": 1}), binary=True
            )
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
    """``mean ± std`` in percent; ``–`` alone when there is no mean."""
    return "–" if mean is None or not math.isfinite(mean) else f"{pct(mean)} ± {pct(std)}"


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


def error_bars(estimate, low, high) -> np.ndarray:
    """``[2, n]`` distances from the estimate to the interval ends, for errorbar(); 0 where unknown.

    A percentile interval need not contain the estimate (few speakers, a nonlinear statistic such as UAR);
    the bar then stops at the estimate rather than pointing backwards.
    """
    est, lo, hi = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (estimate, low, high))
    err = np.vstack([est - lo, hi - est])
    return np.clip(np.where(np.isfinite(err), err, 0.0), 0.0, None)


def class_names() -> list[str]:
    return [CLASS_WORDS[c] for c in CLASSES]
