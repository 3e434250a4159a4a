"""Calibration report: is each model's confidence as trustworthy for female as for male speakers?

Two models can be equally accurate for both genders while one is over-confident for one of them. Anyone who acts
on its probabilities (abstaining below a confidence, ranking, sending the unsure cases to a person) then treats
that gender's utterances worse. The accuracy reports cannot see this.

Each fold run logs ``embeddings.npz`` (the selected model's audio embeddings E_a of the test utterances and the
class prompts E_t, :mod:`benchmark.reports.embeddings`) and its ``logit_scale`` s at every epoch. The selected
model's class probabilities are p = softmax(s · E_a E_tᵀ), with s of the chosen epoch. This is the distribution
the model is trained to match, and its argmax is the prediction. The *confidence* of an utterance is p of its
predicted class. The file's predictions are used, so accuracy agrees with the other reports.

Per fold run (then mean ± sample std over folds per configuration), overall and per gender:

- **ECE** (expected calibration error, Guo et al. 2017): the utterances in :data:`BINS` equal-width confidence
  bins (lo, hi], then the count-weighted mean over bins of |accuracy − mean confidence|;
- **over-confidence**: mean confidence − accuracy (signed; no bins);
- **Brier score**: Σ_k (p_k − 1[k = y])², averaged over utterances (0 perfect, 2 worst);
- **NLL**: −log p_y, averaged.

Per configuration, on its test predictions pooled over folds and seeds: ECE, over-confidence and Brier per
gender, and the F−M difference of each with a 95 % interval from resampling speakers within gender (the bias
report's bootstrap). A verdict on the ECE gap: *less reliable for female speakers* when the F−M interval lies
above 0, *less reliable for male speakers* when below, else *no clear difference*. Each gender-aware
configuration is compared with Emo-CLAP of the same encoder over folds (paired t-test and Wilcoxon) on ECE,
Brier and the size of the F−M ECE gap. Reliability diagrams, one figure per encoder, show accuracy against mean
confidence in each bin, per gender, one panel per configuration.

There is no post-hoc temperature scaling. Fitting it needs the validation set's probabilities, and runs log the
test set's embeddings only. A fold's ECE rests on few utterances per bin, so it is biased upwards on a small test
set. The pooled figures, with their intervals, are the ones to read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import log_softmax

from benchmark.data.records import GENDERS
from benchmark.reports import stats
from benchmark.reports.common import (
    SIGNIFICANT,
    Cells,
    MeasureDifference,
    NoRunsError,
    ReportFolder,
    ci,
    error_bars,
    header,
    header_lines,
    load_cells,
    md_table,
    measure_differences,
    pct,
    pval,
    signed,
    suptitle,
)
from benchmark.reports.embeddings import ARTIFACT, READ_CHUNK, RunEmbeddings, parse
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

BINS = 15
SCALE = "logit_scale"  # the per-epoch metric of the model's logit scale s = 1 / temperature
MEASURES: Mapping[str, str] = {
    "ece": "ECE",
    "overconfidence": "over-confidence",
    "brier": "Brier",
    "nll": "NLL",
    "confidence": "confidence",
    "accuracy": "accuracy",
}
POOLED = ("ece", "overconfidence", "brier")  # pooled per gender, with a bootstrapped F−M gap
# compared with Emo-CLAP over folds: (column, name, what a significant rise means, what a significant fall means)
COMPARED: tuple[tuple[str, str, str, str], ...] = (
    ("ece", "ECE", "less calibrated", "better calibrated"),
    ("brier", "Brier", "worse probabilities", "better probabilities"),
    ("abs_ece_gap", "size of the F−M ECE gap", "F−M gap larger", "F−M gap smaller"),
)
VERDICTS = ("less reliable for female speakers", "less reliable for male speakers", "no clear difference")


class NoCalibrationError(NoRunsError):
    """No finished fold run has both ``embeddings.npz`` and the logit scale of its chosen epoch."""


# ---- one run ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One fold run's test utterances with the selected model's probabilities, reduced to what the report uses."""

    speaker: np.ndarray
    gender: np.ndarray
    confidence: np.ndarray  # p of the predicted class
    correct: np.ndarray  # bool: predicted == true
    brier: np.ndarray
    nll: np.ndarray


def score(e: RunEmbeddings, scale: float) -> Scored:
    """The probabilities softmax(scale · E_a E_tᵀ) of one run's test utterances, scored."""
    log_p = log_softmax(scale * (e.audio @ e.prompts.T), axis=1)
    p = np.exp(log_p)
    rows = np.arange(len(p))
    target = np.zeros_like(p)
    target[rows, e.emotion] = 1.0
    return Scored(
        speaker=e.speaker,
        gender=e.gender,
        confidence=p[rows, e.predicted],
        correct=e.predicted == e.emotion,
        brier=((p - target) ** 2).sum(axis=1),
        nll=-log_p[rows, e.emotion],
    )


def bin_of(confidence: np.ndarray) -> np.ndarray:
    """The bin (i / BINS, (i + 1) / BINS] of each confidence; a confidence of 0 joins the first bin."""
    return np.clip(np.ceil(np.asarray(confidence) * BINS).astype(int) - 1, 0, BINS - 1)


def ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Expected calibration error over :data:`BINS` equal-width bins; NaN without utterances."""
    if not len(confidence):
        return math.nan
    b = bin_of(confidence)
    gap = np.bincount(b, weights=correct.astype(float), minlength=BINS) - np.bincount(
        b, weights=confidence, minlength=BINS
    )
    return float(np.abs(gap).sum() / len(confidence))


def run_measures(s: Scored) -> dict[str, float]:
    """Every measure of :data:`MEASURES`, overall and per gender (``ece_F``), the F−M ECE gap and its size."""
    out: dict[str, float] = {}
    for suffix, mask in (("", np.ones(len(s.gender), bool)), *((f"_{g}", s.gender == g) for g in GENDERS)):
        conf, right = s.confidence[mask], s.correct[mask]
        some = bool(mask.any())
        out[f"ece{suffix}"] = ece(conf, right)
        out[f"confidence{suffix}"] = float(conf.mean()) if some else math.nan
        out[f"accuracy{suffix}"] = float(right.mean()) if some else math.nan
        out[f"overconfidence{suffix}"] = out[f"confidence{suffix}"] - out[f"accuracy{suffix}"]
        out[f"brier{suffix}"] = float(s.brier[mask].mean()) if some else math.nan
        out[f"nll{suffix}"] = float(s.nll[mask].mean()) if some else math.nan
    out["ece_gap"] = out["ece_F"] - out["ece_M"]
    out["abs_ece_gap"] = abs(out["ece_gap"])
    out["n"] = float(len(s.gender))
    return out


# ---- pooled over a configuration's runs, per speaker -----------------------------------------------------------


@dataclass
class SpeakerSums:
    """One configuration's test utterances pooled over its runs, summed per speaker (and confidence bin).

    ``count``, ``confidence`` and ``correct`` are ``[S, BINS]``; ``brier`` is ``[S]``. Speakers are the study's,
    in :attr:`Pooled.speakers` order.
    """

    count: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray
    brier: np.ndarray


class Pooled:
    """Per configuration :class:`SpeakerSums`, over one speaker list shared by every configuration."""

    def __init__(self) -> None:
        self.speakers: dict[str, int] = {}
        self.genders: list[str] = []
        self._rows: dict[str, list[tuple[np.ndarray, np.ndarray, Scored]]] = {}

    def add(self, config: str, s: Scored) -> None:
        index = np.empty(len(s.speaker), dtype=int)
        for i, (speaker, gender) in enumerate(zip(s.speaker.tolist(), s.gender.tolist(), strict=True)):
            if speaker not in self.speakers:
                self.speakers[speaker] = len(self.speakers)
                self.genders.append(gender)
            index[i] = self.speakers[speaker]
        self._rows.setdefault(config, []).append((index, bin_of(s.confidence), s))

    def sums(self, config: str) -> SpeakerSums:
        n_s = len(self.speakers)
        out = SpeakerSums(*(np.zeros((n_s, BINS)) for _ in range(3)), np.zeros(n_s))
        for index, b, s in self._rows.get(config, []):
            flat = index * BINS + b
            out.count += np.bincount(flat, minlength=n_s * BINS).reshape(n_s, BINS)
            out.confidence += np.bincount(flat, weights=s.confidence, minlength=n_s * BINS).reshape(n_s, BINS)
            out.correct += np.bincount(flat, weights=s.correct.astype(float), minlength=n_s * BINS).reshape(n_s, BINS)
            out.brier += np.bincount(index, weights=s.brier, minlength=n_s)
        return out

    @property
    def strata(self) -> np.ndarray:
        return np.asarray(self.genders)


def pooled_statistics(sums: SpeakerSums, strata: np.ndarray) -> dict:
    """Each pooled statistic per gender and its F−M gap, as functions of ``[B, S]`` speaker weights."""
    masks = {g: (strata == g).astype(float) for g in GENDERS}

    def per_gender(measure: str, g: str):
        m = masks[g]

        def value(w: np.ndarray) -> np.ndarray:
            n = w @ (m * sums.count.sum(axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                if measure == "ece":
                    gap = w @ (m[:, None] * sums.correct) - w @ (m[:, None] * sums.confidence)
                    return np.abs(gap).sum(axis=1) / n
                if measure == "overconfidence":
                    return (w @ (m * sums.confidence.sum(axis=1)) - w @ (m * sums.correct.sum(axis=1))) / n
                return (w @ (m * sums.brier)) / n

        return value

    out = {}
    for measure in POOLED:
        f, m = per_gender(measure, "F"), per_gender(measure, "M")
        out[f"{measure}_F"], out[f"{measure}_M"] = f, m
        out[f"{measure}_gap"] = lambda w, f=f, m=m: f(w) - m(w)
    return out


def verdict(gap: stats.Interval) -> str:
    if gap.low > 0:
        return VERDICTS[0]
    if gap.high < 0:
        return VERDICTS[1]
    return VERDICTS[2]


def reliability(sums: SpeakerSums, strata: np.ndarray) -> dict[str, pd.DataFrame]:
    """Per gender: each bin's utterances, mean confidence and accuracy (pooled), bins without utterances left out."""
    out = {}
    for g in GENDERS:
        m = strata == g
        n, conf, right = sums.count[m].sum(axis=0), sums.confidence[m].sum(axis=0), sums.correct[m].sum(axis=0)
        keep = n > 0
        out[g] = pd.DataFrame(
            {
                "bin": np.flatnonzero(keep),
                "n": n[keep].astype(int),
                "confidence": conf[keep] / n[keep],
                "accuracy": right[keep] / n[keep],
            }
        )
    return out


# ---- reading ---------------------------------------------------------------------------------------------------


def chosen_scales(tracker: Tracker, cells: Cells) -> dict[str, float]:
    """Each fold run's logit scale at its chosen epoch (``best_epoch``), from the runs' histories in bulk.

    A run without a logged ``best_epoch``, or without the scale at that step, is absent.
    """
    histories = tracker.read_histories(list(cells.runs.values()), [SCALE])
    best = cells.frame.set_index("run_id")["best_epoch"] if "best_epoch" in cells.frame else pd.Series(dtype=float)
    out = {}
    for run_id, history in histories.items():
        epoch = best.get(run_id, math.nan)
        if not math.isfinite(epoch):
            continue
        steps = dict(history.get(SCALE, []))
        value = steps.get(int(epoch))
        if value is not None and math.isfinite(value) and value > 0:
            out[run_id] = float(value)
    return out


def read_runs(tracker: Tracker, cells: Cells) -> tuple[pd.DataFrame, Pooled, dict[str, list[str]]]:
    """Score every fold run with embeddings and a logit scale: per-run measures, the pooled sums, and the runs
    left out (``{"embeddings": [...], "scale": [...]}``).

    Files are read :data:`READ_CHUNK` runs at a time; only per-utterance scores are kept, not the embeddings.
    """
    scales = chosen_scales(tracker, cells)
    rows, pooled = [], Pooled()
    missing: dict[str, list[str]] = {"embeddings": [], "scale": []}
    frame = cells.frame
    for start in range(0, len(frame), READ_CHUNK):
        part = frame.iloc[start : start + READ_CHUNK]
        wanted = [r for r in part["run_id"] if r in scales]
        missing["scale"] += [r for r in part["run_id"] if r not in scales]
        files = tracker.read_artifacts([cells.runs[r] for r in wanted], ARTIFACT)
        for run_id, config, fold in zip(part["run_id"], part["config"], part["fold"], strict=True):
            if run_id not in scales:
                continue
            if run_id not in files:
                missing["embeddings"].append(run_id)
                continue
            scored = score(parse(files[run_id], f"run {run_id} ({config}, fold {fold}) {ARTIFACT}"), scales[run_id])
            pooled.add(config, scored)
            rows.append({"run_id": run_id, SCALE: scales[run_id], **run_measures(scored)})
    return pd.DataFrame(rows), pooled, missing


# ---- the report ------------------------------------------------------------------------------------------------


Difference = MeasureDifference


@dataclass(frozen=True)
class CalibrationReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    runs: pd.DataFrame  # per scored fold run: keys, logit scale and every measure
    frame: pd.DataFrame  # per configuration: folds, means and stds, pooled figures with intervals, verdict
    differences: tuple[Difference, ...]
    reliability: Mapping[str, Mapping[str, pd.DataFrame]]  # config -> gender -> bins
    missing: Mapping[str, tuple[str, ...]]  # fold runs left out: without embeddings, without a logit scale


def differences(cells: Cells) -> list[Difference]:
    return measure_differences(cells, [(c, rise, fall) for c, _, rise, fall in COMPARED])


def config_table(
    summary: pd.DataFrame, sums_of: Mapping[str, SpeakerSums], strata: np.ndarray, n_boot: int, seed: int
) -> pd.DataFrame:
    """Per configuration: the fold means of :func:`run_measures` and the pooled figures with their intervals."""
    rows = []
    for config in summary["config"]:
        sums = sums_of[config]
        row: dict[str, object] = {"config": config, "n_pooled": int(sums.count.sum())}
        for g in GENDERS:
            m = strata == g
            n = sums.count[m].sum()
            row[f"pooled_accuracy_{g}"] = sums.correct[m].sum() / n if n else math.nan
            row[f"pooled_confidence_{g}"] = sums.confidence[m].sum() / n if n else math.nan
        for name, statistic in pooled_statistics(sums, strata).items():
            iv = stats.cluster_bootstrap(statistic, strata, n_boot=n_boot, seed=seed)
            row |= {f"pooled_{name}": iv.estimate, f"pooled_{name}_low": iv.low, f"pooled_{name}_high": iv.high}
            if name == "ece_gap":
                row["verdict"] = verdict(iv)
        rows.append(row)
    return summary.merge(pd.DataFrame(rows), on="config", how="left")


def write_calibration_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
) -> CalibrationReport:
    """Read the fold runs' logit scales and ``embeddings.npz`` (bulk) and write ``calibration.md/.csv``,
    ``calibration_runs.csv``, ``calibration.png`` and one reliability figure per encoder.

    Raises:
        NoCalibrationError: no finished fold run has both embeddings and the logit scale of its chosen epoch;
            nothing is written.
        EmbeddingsFileError: a run's file cannot be read; nothing is written.
    """
    cells = load_cells(tracker, study_name, encoders)
    measures, pooled, missing = read_runs(tracker, cells)
    if measures.empty:
        raise NoCalibrationError(
            f"study {study_name!r}: none of its {len(cells.frame)} finished fold runs has both {ARTIFACT} and the "
            f"{SCALE} of its chosen epoch ({len(missing['embeddings'])} without {ARTIFACT}, "
            f"{len(missing['scale'])} without the scale; runs logged before embeddings were, or with "
            "tracking.log_embeddings = false, have none); run the study again into a new store or experiment"
        )
    # the run's own logit_scale metric is its last epoch's: the chosen epoch's replaces it
    logged = cells.frame.drop(columns=[c for c in measures if c != "run_id" and c in cells.frame])
    frame = logged[logged["run_id"].isin(measures["run_id"])].merge(measures, on="run_id")
    cells = Cells(frame.reset_index(drop=True), cells.extras, {r: cells.runs[r] for r in frame["run_id"]})
    columns = [f"{m}{suffix}" for m in MEASURES for suffix in ("", *(f"_{g}" for g in GENDERS))] + [
        "ece_gap",
        "abs_ece_gap",
        SCALE,
    ]
    summary = cells.summary(columns)
    sums_of = {c: pooled.sums(c) for c in summary["config"]}  # each configuration's per-speaker sums, once
    table = config_table(summary, sums_of, pooled.strata, n_boot, seed)
    diffs = differences(cells)
    bins = {c: reliability(sums_of[c], pooled.strata) for c in table["config"]}
    key_cols = ["run_id", "config", "encoder", "variant", "alpha", *cells.extras, "fold", "seed"]
    runs = cells.frame[[*key_cols, "n", *columns]]

    head = header(
        cells, tracker, f"{study_name}: calibration — how far each model's confidence can be trusted, per gender"
    )
    out = ReportFolder(out_root, study_name)
    title = f"{study_name} — {head['data']}\n{head['weights']}"
    names = dict(zip(table["config"], table["encoder"] + ": " + table["label"], strict=True))
    figs = [out.figure("calibration.png", figure(table, [names[c] for c in table["config"]], title))]
    for encoder, rows in table.groupby("encoder", sort=False):
        fig = reliability_figure(encoder, rows, bins, title)
        figs.append(out.figure(f"calibration_{_slug(encoder)}.png", fig))
    text = markdown(table, diffs, names, head, n_boot, seed, missing, [p.name for p in figs])
    md = out.text("calibration.md", text)
    csv_table = table.copy()
    for d in diffs:
        row = csv_table["config"] == d.config
        csv_table.loc[row, f"{d.measure}_diff"] = d.test.mean_diff
        csv_table.loc[row, f"{d.measure}_p_t"] = d.test.p_t
    csv = out.csv("calibration.csv", csv_table)
    out.csv("calibration_runs.csv", runs)
    page = out.publish(tracker, study_tags)
    return CalibrationReport(
        out.path,
        md,
        csv,
        tuple(figs),
        page,
        runs,
        table,
        tuple(diffs),
        bins,
        {k: tuple(v) for k, v in missing.items()},
    )


# ---- figures ---------------------------------------------------------------------------------------------------

_GENDER_STYLE = {"F": ("tab:red", 0.12), "M": ("tab:blue", -0.12)}


def figure(frame: pd.DataFrame, names: Sequence[str], title: str):
    """Left: pooled ECE per gender. Right: the F−M gaps of ECE and over-confidence with their intervals."""
    n = len(frame)
    fig, axes = plt.subplots(1, 2, figsize=(11, 2.2 + 0.33 * n), dpi=80, sharey=True, layout="constrained")
    y = np.arange(n)[::-1]
    for g, (color, dy) in _GENDER_STYLE.items():
        axes[0].plot(100 * frame[f"pooled_ece_{g}"], y + dy, "o", color=color, label=f"ECE, {g}")
        axes[0].plot(
            100 * frame[f"pooled_overconfidence_{g}"], y + dy, "s", color=color, mfc="none", label=f"over-conf., {g}"
        )
    axes[0].axvline(0, color="black", lw=0.8)
    axes[0].set_xlabel("percentage points")
    axes[0].set_title("ECE (filled) and over-confidence (hollow) per gender", fontsize=9)
    for name, marker, dy, color, label in (
        ("ece_gap", "o", 0.12, "tab:purple", "ECE, F − M"),
        ("overconfidence_gap", "s", -0.12, "tab:green", "over-confidence, F − M"),
    ):
        est = frame[f"pooled_{name}"].to_numpy(dtype=float)
        err = 100 * error_bars(est, frame[f"pooled_{name}_low"], frame[f"pooled_{name}_high"])
        axes[1].errorbar(100 * est, y + dy, xerr=err, fmt=marker, capsize=3, color=color, label=label)
    axes[1].axvline(0, color="black", lw=0.8)
    axes[1].set_xlabel("female − male (percentage points)")
    axes[1].set_title("F−M gap with 95 % speaker CI", fontsize=9)
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncol=6, fontsize=7)
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].set_ylim(-0.7, n - 0.3)
    suptitle(fig, title)
    return fig


def reliability_figure(encoder: str, rows: pd.DataFrame, bins: Mapping[str, Mapping[str, pd.DataFrame]], title: str):
    """One encoder's reliability diagrams: per configuration, accuracy against mean confidence per bin and gender
    (marker area ~ utterances in the bin), with the diagonal of perfect calibration."""
    configs = list(rows["config"])
    cols = min(4, len(configs))
    n_rows = math.ceil(len(configs) / cols)
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(3.0 * cols + 0.4, 3.0 * n_rows + 1.2), dpi=80, squeeze=False, layout="constrained"
    )
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for g, (color, _) in _GENDER_STYLE.items():
            b = bins[row["config"]][g]
            if len(b):
                size = 200 * b["n"] / max(1, b["n"].sum())
                ax.plot(b["confidence"], b["accuracy"], color=color, lw=1, alpha=0.7)
                ax.scatter(b["confidence"], b["accuracy"], s=size + 4, color=color, label=g, alpha=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ece_f, ece_m = row["pooled_ece_F"], row["pooled_ece_M"]
        ax.set_title(f"{row['label']}\nECE F {pct(ece_f, 1)} / M {pct(ece_m, 1)}", fontsize=8)
        ax.set_xlabel("mean confidence", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(configs) :]:
        ax.set_axis_off()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        words = [{"F": "female", "M": "male"}[g] for g in labels]
        fig.legend(handles, words, loc="outside lower center", ncol=2, fontsize=8)
    suptitle(fig, f"{encoder}: reliability per gender\n{title}")
    return fig


# ---- Markdown --------------------------------------------------------------------------------------------------


def markdown(
    frame: pd.DataFrame,
    diffs: Sequence[Difference],
    names: Mapping[str, str],
    head: Mapping[str, str],
    n_boot: int,
    seed: int,
    missing: Mapping[str, Sequence[str]],
    figures: Sequence[str],
) -> str:
    lines = header_lines(head)
    lines += [
        "Each selected model's class probabilities p = softmax(s · E_a E_tᵀ), with its logit scale s at the chosen "
        "epoch. *Confidence*: p of the predicted class. *ECE*: the test utterances in "
        f"{BINS} equal-width confidence bins, the count-weighted mean of |accuracy − mean confidence|. "
        "*Over-confidence*: mean confidence − accuracy. *Brier*: Σ_k (p_k − 1[k = y])², averaged (0 to 2). "
        "No post-hoc temperature scaling: the runs log test embeddings only.",
        "",
    ]
    if missing["embeddings"] or missing["scale"]:
        lines += [
            f"Left out: {len(missing['embeddings'])} finished fold run(s) without {ARTIFACT} and "
            f"{len(missing['scale'])} without the {SCALE} of their chosen epoch.",
            "",
        ]
    lines += [
        "## Per gender, pooled over folds",
        "",
        *md_table(
            [
                "configuration",
                "logit scale",
                "accuracy F / M",
                "confidence F / M",
                "ECE F / M",
                "ECE F − M",
                "over-confidence F / M",
                "over-confidence F − M",
                "Brier F / M",
                "verdict",
            ],
            [
                [
                    names[r["config"]],
                    f"{r[f'{SCALE}_mean']:.1f}",
                    f"{pct(r['pooled_accuracy_F'])} / {pct(r['pooled_accuracy_M'])}",
                    f"{pct(r['pooled_confidence_F'])} / {pct(r['pooled_confidence_M'])}",
                    f"{pct(r['pooled_ece_F'])} / {pct(r['pooled_ece_M'])}",
                    f"{signed(r['pooled_ece_gap'])} {ci(r['pooled_ece_gap_low'], r['pooled_ece_gap_high'])}",
                    f"{signed(r['pooled_overconfidence_F'])} / {signed(r['pooled_overconfidence_M'])}",
                    f"{signed(r['pooled_overconfidence_gap'])} "
                    f"{ci(r['pooled_overconfidence_gap_low'], r['pooled_overconfidence_gap_high'])}",
                    f"{r['pooled_brier_F']:.3f} / {r['pooled_brier_M']:.3f}",
                    r["verdict"],
                ]
                for _, r in frame.iterrows()
            ],
        ),
        "ECE and over-confidence in %, their F − M gaps in percentage points with 95 % intervals from resampling "
        f"speakers within gender ({n_boot} resamplings, seed {seed}), on the test predictions pooled over folds and "
        "seeds. Logit scale: its mean over fold runs. *Less reliable for female (male) "
        "speakers*: the interval of the ECE gap lies above (below) 0.",
        "",
        "## Per fold run",
        "",
        *md_table(
            ["configuration", "folds", "ECE", "ECE F", "ECE M", "Brier", "NLL"],
            [
                [
                    names[r["config"]],
                    int(r["folds"]),
                    *(_pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in ("ece", "ece_F", "ece_M")),
                    *(_pm(r[f"{m}_mean"], r[f"{m}_std"], scale=1.0, digits=3) for m in ("brier", "nll")),
                ]
                for _, r in frame.iterrows()
            ],
        ),
        "Mean ± sample std over folds of each fold run's figure (seeds averaged); ECE in %. A fold's ECE rests on "
        "few utterances per bin and is biased upwards on a small test set.",
        "",
    ]
    if diffs:
        lines += [
            "## Against Emo-CLAP",
            "",
            "Each gender-aware configuration minus Emo-CLAP of the same encoder, paired over folds (mean "
            "difference, in percentage points for ECE and its gap; paired t-test and Wilcoxon signed-rank "
            f"p-values; a reading at p < {SIGNIFICANT}).",
            "",
        ]
        measure_names = {c: n for c, n, _, _ in COMPARED}
        lines += md_table(
            ["configuration", "measure", "folds", "difference", "p (t)", "p (Wilcoxon)", "reading"],
            [
                [
                    names[d.config],
                    measure_names[d.measure],
                    d.test.n,
                    _difference(d),
                    pval(d.test.p_t),
                    pval(d.test.p_w),
                    d.reading if not d.test.note else f"{d.reading} ({d.test.note})",
                ]
                for d in diffs
            ],
        )
    else:
        lines += ["No gender-aware configuration with an Emo-CLAP run of the same encoder to compare with.", ""]
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _difference(d: Difference) -> str:
    return (
        f"{d.test.mean_diff:+.4f}"
        if d.measure == "brier" and math.isfinite(d.test.mean_diff)
        else signed(d.test.mean_diff)
    )


def _pm(mean: float, std: float, *, scale: float = 100.0, digits: int = 2) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
