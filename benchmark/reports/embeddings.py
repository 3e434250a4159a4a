"""Embeddings report: where each model puts the test utterances, by emotion and by the speaker's gender.

Every fold run logs ``embeddings.npz`` (:func:`save`, unless ``tracking.log_embeddings = false``): the
selected model's audio embedding E_a of each test utterance (L2-normalised, stored as float16), the K
class-prompt embeddings E_t it classified them with, and each utterance's id, speaker, gender, true and
predicted class. This report reads them in bulk and measures, per fold run, then mean ± sample std over
folds per configuration:

- **emotion silhouette**: the silhouette of the emotion classes in cosine distance
  (``sklearn.metrics.silhouette_score``): 1 for tight, far-apart classes, 0 for overlapping ones;
- **gender silhouette**: the same for the speakers' genders;
- **F–M split within emotions**: per emotion, the cosine distance between the centroid of its female and of
  its male utterances, averaged over emotions: how differently the model places one emotion spoken by women
  and by men;
- **prompt margin** per gender: the cosine to the true class's prompt minus the largest cosine to another
  prompt, averaged over that gender's utterances (positive: classified correctly, and by how much), and its
  F − M gap, the embedding-space view of the bias report's accuracy gap;
- **spread**: the mean cosine distance of the embeddings to their mean direction. Silhouettes do not see
  scale: a model that maps every utterance to almost one point (a collapse, a known failure of contrastive
  training) can still have a high silhouette of tiny differences. The report names configurations whose
  spread is below :data:`COLLAPSED`.

Each gender-aware configuration is compared with Emo-CLAP of the same encoder, fold by fold
(:func:`benchmark.reports.stats.paired_tests`). The method predicts the direction: SL-GEmo-CLAP's targets
make same-gender pairs partial positives (weight 1 − α_e), so its embeddings should separate genders more
than Emo-CLAP's, whose targets ignore gender; ML-GEmo-CLAP trains gender on the shared audio encoder.

An IEMOCAP test session holds one female and one male speaker, so within a fold gender cannot be told apart
from speaker identity: the gender measures are also speaker measures. Configurations are compared on the
same sessions, so the comparison is like with like; a gender probe would only measure the same thing again
and is not reported.

The figure shows, per encoder, one fold's test embeddings in two dimensions (PCA by default, t-SNE as an
option) with the class prompts: colour = emotion, marker = gender.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.records import CLASS_WORDS, CLASSES, GENDERS
from benchmark.reports.common import (
    PARAM_NAMES,
    SIGNIFICANT,
    VARIANT_NAMES,
    Cells,
    MeasureDifference,
    NoRunsError,
    ReportFolder,
    header,
    header_lines,
    load_cells,
    md_table,
    measure_differences,
    pval,
    suptitle,
)
from benchmark.reports.plots import plt
from benchmark.tracking import Tracker

ARTIFACT = "embeddings.npz"
PROJECTIONS = ("pca", "tsne")
MEASURES: Mapping[str, str] = {
    "sil_emotion": "emotion silhouette",
    "sil_gender": "gender silhouette",
    "gender_split": "F–M split within emotions",
    "margin_F": "margin F",
    "margin_M": "margin M",
    "margin_gap": "margin gap F − M",
    "spread": "spread",
}
# compared with Emo-CLAP: (column, what a significant rise means, what a significant fall means)
COMPARED: tuple[tuple[str, str, str], ...] = (
    ("sil_emotion", "emotions further apart", "emotions closer together"),
    ("sil_gender", "genders further apart", "genders closer together"),
    ("gender_split", "each emotion split more by gender", "each emotion split less by gender"),
    ("abs_margin_gap", "F − M margin gap larger", "F − M margin gap smaller"),
)
COLLAPSED = 0.01  # mean cosine distance to the mean direction below which a configuration is called collapsed
_ARRAYS = ("id", "speaker", "gender", "emotion", "predicted", "classes", "audio", "prompts")
_COLOURS = ("#4c72b0", "#dd8452", "#c44e52", "#55a868")  # neu, hap, ang, sad
_MARKERS = {"F": "o", "M": "^"}


class NoEmbeddingsError(NoRunsError):
    """No finished fold run of the study logged ``embeddings.npz``."""


class EmbeddingsFileError(ValueError):
    """An ``embeddings.npz`` that cannot be read or does not hold what :func:`save` writes."""


# ---- the file ------------------------------------------------------------------------------------------


def save(
    path: Path,
    *,
    ids: Sequence[str],
    speakers: Sequence[str],
    genders: Sequence[str],
    emotions: Sequence[str],
    predicted: Sequence[str],
    audio: np.ndarray,
    prompts: np.ndarray,
    classes: Sequence[str] = CLASSES,
) -> None:
    """Write ``embeddings.npz``: audio embeddings as float16, prompts as float32, the rest as text arrays.

    ``np.load`` reads it without pickle. Rows of ``audio`` follow ``ids``; rows of ``prompts`` follow
    ``classes``.
    """
    columns = {"id": ids, "speaker": speakers, "gender": genders, "emotion": emotions, "predicted": predicted}
    with open(path, "wb") as f:  # a file object: numpy would add ".npz" to a path without it
        np.savez_compressed(
            f,
            audio=np.asarray(audio, dtype=np.float16),
            prompts=np.asarray(prompts, dtype=np.float32),
            classes=np.asarray(classes, dtype=str),
            **{k: np.asarray(v, dtype=str) for k, v in columns.items()},
        )


def save_scored(
    path: Path,
    predictions: Sequence[Mapping[str, str]],
    ids: Sequence[str],
    audio: np.ndarray,
    prompts: np.ndarray,
    classes: Sequence[str] = CLASSES,
) -> None:
    """:func:`save` from per-utterance prediction rows (``id, speaker, gender, emotion, predicted``) and the
    embeddings of ``ids`` (rows in that order)."""
    by_id = {p["id"]: p for p in predictions}
    rows = [by_id[i] for i in ids]
    save(
        path,
        ids=ids,
        speakers=[r["speaker"] for r in rows],
        genders=[r["gender"] for r in rows],
        emotions=[r["emotion"] for r in rows],
        predicted=[r["predicted"] for r in rows],
        audio=audio,
        prompts=prompts,
        classes=classes,
    )


@dataclass(frozen=True)
class RunEmbeddings:
    """One fold run's test embeddings, checked: rows of ``audio`` re-normalised (float16 storage)."""

    ids: np.ndarray
    gender: np.ndarray  # "F" / "M"
    emotion: np.ndarray  # class index into CLASSES
    audio: np.ndarray  # [n, d] float64, unit rows
    prompts: np.ndarray  # [K, d] float64, unit rows
    speaker: np.ndarray  # speaker id of each row
    predicted: np.ndarray  # the model's class index of each row (as in predictions.csv)


def parse(data: bytes, where: str) -> RunEmbeddings:
    """Read the bytes of an ``embeddings.npz``.

    Raises:
        EmbeddingsFileError: unreadable, an array missing, shapes that disagree, an unknown class (true or
            predicted) or gender, or a value that is not finite; the message starts with ``where``.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise EmbeddingsFileError(f"{where}: not a readable .npz file ({exc})") from exc
    missing = [k for k in _ARRAYS if k not in arrays]
    if missing:
        raise EmbeddingsFileError(f"{where}: no array {', '.join(missing)} (has {', '.join(sorted(arrays)) or 'none'})")
    ids, audio, prompts = arrays["id"], arrays["audio"], arrays["prompts"]
    n = len(ids)
    for key in ("speaker", "gender", "emotion", "predicted"):
        if arrays[key].shape != (n,):
            raise EmbeddingsFileError(f"{where}: {key} has shape {arrays[key].shape}, expected ({n},) like id")
    classes = [str(c) for c in arrays["classes"]]
    if classes != list(CLASSES):
        raise EmbeddingsFileError(f"{where}: classes {classes}, expected {list(CLASSES)}")
    if audio.ndim != 2 or audio.shape[0] != n or audio.shape[1] == 0:
        raise EmbeddingsFileError(f"{where}: audio has shape {audio.shape}, expected ({n}, d) for {n} ids")
    if prompts.shape != (len(CLASSES), audio.shape[1]):
        raise EmbeddingsFileError(
            f"{where}: prompts has shape {prompts.shape}, expected ({len(CLASSES)}, {audio.shape[1]})"
        )
    for key, values, known in (
        ("gender", arrays["gender"], GENDERS),
        ("emotion", arrays["emotion"], CLASSES),
        ("predicted", arrays["predicted"], CLASSES),
    ):
        bad = sorted(set(values.tolist()) - set(known))
        if bad:
            raise EmbeddingsFileError(f"{where}: unknown {key} {bad[0]!r} (expected one of {', '.join(known)})")
    audio, prompts = audio.astype(np.float64), prompts.astype(np.float64)
    for key, values in (("audio", audio), ("prompts", prompts)):
        norms = np.linalg.norm(values, axis=1)
        if not np.isfinite(values).all() or (norms == 0).any():
            raise EmbeddingsFileError(f"{where}: {key} holds a non-finite or all-zero row")
    index = {c: i for i, c in enumerate(CLASSES)}
    emotion, predicted = (np.array([index[e] for e in arrays[k].tolist()], dtype=int) for k in ("emotion", "predicted"))
    return RunEmbeddings(ids, arrays["gender"], emotion, _unit(audio), _unit(prompts), arrays["speaker"], predicted)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---- measures ------------------------------------------------------------------------------------------


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """The ``[n, n]`` cosine distances of the rows of ``x``, diagonal exactly 0 (one matrix for every silhouette).

    In float32: the embeddings are stored as float16, and it halves the cost of the largest step.
    """
    from sklearn.metrics.pairwise import cosine_distances as distances

    d = distances(x.astype(np.float32))
    np.fill_diagonal(d, 0.0)
    return d


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` over precomputed distances; NaN with fewer than two labels or none shared."""
    from sklearn.metrics import silhouette_score

    n_labels = len(set(labels.tolist()))
    if n_labels < 2 or n_labels >= len(labels):
        return math.nan
    return float(silhouette_score(distances, labels, metric="precomputed"))


def gender_split(e: RunEmbeddings) -> float:
    """Mean over emotions (with both genders present) of the cosine distance between the F and M centroids."""
    distances = []
    for k in range(len(CLASSES)):
        f = e.audio[(e.emotion == k) & (e.gender == "F")]
        m = e.audio[(e.emotion == k) & (e.gender == "M")]
        if len(f) and len(m):
            cf, cm = f.mean(axis=0), m.mean(axis=0)
            norm = np.linalg.norm(cf) * np.linalg.norm(cm)
            if norm > 0:
                distances.append(1.0 - float(cf @ cm) / norm)
    return float(np.mean(distances)) if distances else math.nan


def spread(e: RunEmbeddings) -> float:
    """Mean cosine distance of the (unit) embeddings to their mean direction: 0 when all are one point."""
    centre = e.audio.mean(axis=0)
    norm = np.linalg.norm(centre)
    if norm == 0:
        return 1.0  # spread evenly enough to cancel out
    return float(np.mean(1.0 - e.audio @ (centre / norm)))


def margins(e: RunEmbeddings) -> np.ndarray:
    """Per utterance: cosine to its true class's prompt minus the largest cosine to another class's prompt."""
    sims = e.audio @ e.prompts.T
    rows = np.arange(len(sims))
    true = sims[rows, e.emotion]
    others = sims.copy()
    others[rows, e.emotion] = -np.inf
    return true - others.max(axis=1)


def run_measures(e: RunEmbeddings) -> dict[str, float]:
    """Every measure of :data:`MEASURES` (and ``abs_margin_gap``) of one fold run."""
    d = cosine_distances(e.audio)
    out = {
        "sil_emotion": silhouette(d, e.emotion),
        "sil_gender": silhouette(d, e.gender),
        "gender_split": gender_split(e),
    }
    m = margins(e)
    for g in GENDERS:
        mine = m[e.gender == g]
        out[f"margin_{g}"] = float(mine.mean()) if len(mine) else math.nan
    out["margin_gap"] = out["margin_F"] - out["margin_M"]
    out["abs_margin_gap"] = abs(out["margin_gap"])
    out["spread"] = spread(e)
    out["n"] = float(len(e.ids))
    return out


# ---- the report ----------------------------------------------------------------------------------------


Difference = MeasureDifference


@dataclass(frozen=True)
class EmbeddingsReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    runs: pd.DataFrame  # per fold run with embeddings: keys and every measure
    summary: pd.DataFrame  # per configuration: folds, mean and std of every measure
    differences: tuple[Difference, ...]
    missing: tuple[str, ...]  # fold runs without embeddings.npz
    drawn: Mapping[str, Mapping[str, tuple[str, int, int] | None]]  # encoder -> config -> (run, fold, seed)


READ_CHUNK = 64  # runs whose files are held in memory at once (about 1 MB each on IEMOCAP)


def read_measures(tracker: Tracker, cells: Cells) -> tuple[pd.DataFrame, list[str]]:
    """Per fold run with an ``embeddings.npz``: its measures; and the runs without one.

    Files are read in bulk, :data:`READ_CHUNK` runs at a time, so memory does not grow with the study.
    """
    rows, missing = [], []
    frame = cells.frame
    for start in range(0, len(frame), READ_CHUNK):
        part = frame.iloc[start : start + READ_CHUNK]
        files = tracker.read_artifacts([cells.runs[r] for r in part["run_id"]], ARTIFACT)
        for run_id, config, fold in zip(part["run_id"], part["config"], part["fold"], strict=True):
            if run_id not in files:
                missing.append(run_id)
                continue
            where = f"run {run_id} ({config}, fold {fold}) {ARTIFACT}"
            rows.append({"run_id": run_id, **run_measures(parse(files[run_id], where))})
    return pd.DataFrame(rows), missing


def differences(cells: Cells) -> list[Difference]:
    return measure_differences(cells, COMPARED)


def write_embeddings_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = 0,
    seed: int = 0,
    fold: int | None = None,
    projection: str = "pca",
) -> EmbeddingsReport:
    """Read the fold runs' ``embeddings.npz`` (bulk) and write ``embeddings.md/.csv``, ``embeddings_runs.csv``
    and one projection figure per encoder.

    ``n_boot`` is accepted for a uniform interface: the comparisons here are paired over folds. ``seed`` seeds
    t-SNE. ``fold``: the fold whose test embeddings are drawn (default: the first fold every configuration of
    the encoder has).

    Raises:
        NoEmbeddingsError: no finished fold run logged embeddings; nothing is written.
        EmbeddingsFileError: a run's file cannot be read; nothing is written.
        ValueError: an unknown ``projection``, or a ``fold`` no run has; nothing is written.
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection {projection!r}: expected one of {', '.join(PROJECTIONS)}")
    cells = load_cells(tracker, study_name, encoders)
    measures, missing = read_measures(tracker, cells)
    if measures.empty:
        raise NoEmbeddingsError(
            f"study {study_name!r}: none of its {len(cells.frame)} finished fold runs logged {ARTIFACT} "
            "(runs from before embeddings were logged, or tracking.log_embeddings = false); run the study "
            "again into a new store or experiment to get them"
        )
    frame = cells.frame[cells.frame["run_id"].isin(measures["run_id"])].merge(measures, on="run_id")
    cells = Cells(frame.reset_index(drop=True), cells.extras, {r: cells.runs[r] for r in frame["run_id"]})
    columns = [*MEASURES, "abs_margin_gap"]
    summary = cells.summary(columns)
    diffs = differences(cells)
    key_cols = ["run_id", "config", "encoder", "variant", "alpha", *cells.extras, "fold", "seed"]
    runs = cells.frame[[*key_cols, "n", *columns]]
    if fold is not None and fold not in set(cells.frame["fold"]):
        folds = ", ".join(str(f) for f in sorted(set(cells.frame["fold"])))
        raise ValueError(f"--fold {fold}: no fold run with embeddings has it (folds: {folds})")
    drawn = {
        encoder: _plotted_runs(cells, list(configs["config"]), fold)
        for encoder, configs in cells.configs().groupby("encoder", sort=False)
    }
    chosen = [cells.runs[m[0]] for shown in drawn.values() for m in shown.values() if m is not None]
    files = tracker.read_artifacts(chosen, ARTIFACT)

    head = header(cells, tracker, f"{study_name}: embeddings — emotions and speaker genders in the embedding space")
    out = ReportFolder(out_root, study_name)
    title = f"{study_name} — {head['data']}\n{head['weights']}"
    figs = []
    if _has_sweep(cells, summary):
        figs.append(out.figure("embeddings_alpha.png", alpha_figure(cells, summary, title)))
    for encoder, shown in drawn.items():
        fig = figure(encoder, shown, cells, files, projection, seed, title)
        figs.append(out.figure(f"embeddings_{_slug(encoder)}.png", fig))
    text = markdown(summary, diffs, head, len(missing), projection, drawn, [p.name for p in figs])
    md = out.text("embeddings.md", text)
    table = summary.copy()
    for d in diffs:
        row = table["config"] == d.config
        table.loc[row, f"{d.measure}_diff"] = d.test.mean_diff
        table.loc[row, f"{d.measure}_p_t"] = d.test.p_t
    csv = out.csv("embeddings.csv", table)
    out.csv("embeddings_runs.csv", runs)
    page = out.publish(tracker, study_tags)
    return EmbeddingsReport(out.path, md, csv, tuple(figs), page, runs, summary, tuple(diffs), tuple(missing), drawn)


def _plotted_runs(cells: Cells, configs: Sequence[str], fold: int | None) -> dict[str, tuple[str, int, int] | None]:
    """Per configuration, the (run id, fold, seed) drawn: ``fold`` (or the first fold all have), lowest seed."""
    members = {c: sorted(cells.members(c), key=lambda m: (m[1], m[2])) for c in configs}
    if fold is None:
        shared = set.intersection(*({m[1] for m in ms} for ms in members.values()))
        fold = min(shared) if shared else min(m[1] for ms in members.values() for m in ms)
    return {c: next((m for m in ms if m[1] == fold), None) for c, ms in members.items()}


def project(points: np.ndarray, prompts: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates of the audio embeddings and of the prompts, projected together."""
    both = np.vstack([points, prompts])
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(points)
        xy = pca.transform(both)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(both) - 1) / 3)))
        xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(both)
    return xy[: len(points)], xy[len(points) :]


def figure(
    encoder: str,
    shown: Mapping[str, tuple[str, int, int] | None],
    cells: Cells,
    files: Mapping[str, bytes],
    projection: str,
    seed: int,
    title: str,
):
    n = len(shown)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows + 1.2), squeeze=False)
    labels = cells.configs().set_index("config")["label"]
    measures = cells.frame.set_index("run_id")
    folds = set()
    panels = {}
    for config, member in shown.items():
        if member is not None:
            e = parse(files[member[0]], f"run {member[0]} {ARTIFACT}")
            panels[config] = (e, *project(e.audio, e.prompts, projection, seed))
    # PCA keeps distances, so its panels share one scale (a collapsed model shows as a dot); t-SNE's do not
    boxes = [_limits(xy) for _, xy, _ in panels.values()]
    shared = (np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)) if boxes else None
    for ax, (config, member) in zip(axes.flat, shown.items(), strict=False):
        ax.set_xticks([])
        ax.set_yticks([])
        if member is None:
            ax.set_title(f"{labels[config]}\nno embeddings for this fold", fontsize=8)
            continue
        run_id, fold, run_seed = member
        folds.add((fold, run_seed))
        e, xy, pxy = panels[config]
        low, high = shared if projection == "pca" else _limits(xy)
        pxy, inside = _onto_box(pxy, low, high)
        for k, colour in enumerate(_COLOURS):
            for g, marker in _MARKERS.items():
                sel = (e.emotion == k) & (e.gender == g)
                ax.scatter(xy[sel, 0], xy[sel, 1], s=7, c=colour, marker=marker, alpha=0.55, linewidths=0)
            face = colour if inside[k] else "white"
            edge = "black" if inside[k] else colour
            ax.scatter(*pxy[k], s=220, c=face, marker="*", edgecolors=edge, zorder=3, clip_on=False)
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        r = measures.loc[run_id]
        collapsed = " (collapsed)" if r["spread"] < COLLAPSED else ""
        ax.set_title(
            f"{labels[config]}\nsilhouette: emotion {r['sil_emotion']:.2f}, gender {r['sil_gender']:.2f}\n"
            f"spread {r['spread']:.4f}{collapsed}",
            fontsize=8,
        )
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], color=c, marker="s", linestyle="", label=CLASS_WORDS[k])
        for k, c in zip(CLASSES, _COLOURS, strict=True)
    ]
    handles += [
        plt.Line2D([], [], color="grey", marker=m, linestyle="", label="female" if g == "F" else "male")
        for g, m in _MARKERS.items()
    ]
    handles.append(plt.Line2D([], [], color="grey", marker="*", markersize=12, linestyle="", label="class prompt"))
    handles.append(
        plt.Line2D(
            [],
            [],
            color="grey",
            marker="*",
            markersize=12,
            markerfacecolor="white",
            linestyle="",
            label="beyond the edge",
        )
    )
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    which = ", ".join(f"fold {f} seed {s}" for f, s in sorted(folds)) or "no fold"
    suptitle(fig, f"{title}\n{encoder}: test embeddings of {which}, {projection.upper()}")
    fig.tight_layout(rect=(0, 0.05, 1, 0.9))
    return fig


ALPHA_MEASURES = ("sil_gender", "gender_split", "sil_emotion", "spread")


def _sweeps(cells: Cells, summary: pd.DataFrame):
    """Per encoder, its gender-aware series (variant + varying parameters) over α, in order."""
    for encoder, sub in summary[summary["variant"] != "emo-clap"].groupby("encoder", sort=False):
        for key, g in sub.groupby(["variant", *cells.extras], sort=False):
            yield encoder, (key if isinstance(key, tuple) else (key,)), g.sort_values("alpha")


def _has_sweep(cells: Cells, summary: pd.DataFrame) -> bool:
    return any(g["alpha"].nunique() > 1 for _, _, g in _sweeps(cells, summary))


def alpha_figure(cells: Cells, summary: pd.DataFrame, title: str):
    """The gender and emotion measures against α per encoder, one line per series, Emo-CLAP at α = 1."""
    encoders = list(dict.fromkeys(e for e, _, g in _sweeps(cells, summary) if g["alpha"].nunique() > 1))
    fig, axes = plt.subplots(
        len(ALPHA_MEASURES),
        len(encoders),
        figsize=(max(5.5, 4.4 * len(encoders)), 2.6 * len(ALPHA_MEASURES) + 0.8),
        squeeze=False,
        layout="constrained",
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, encoder in enumerate(encoders):
        base = summary[(summary["encoder"] == encoder) & (summary["variant"] == "emo-clap")]
        series = [(key, g) for e, key, g in _sweeps(cells, summary) if e == encoder]
        for i, measure in enumerate(ALPHA_MEASURES):
            ax = axes[i, j]
            for _, b in base.iterrows():
                mean, std = b[f"{measure}_mean"], b[f"{measure}_std"]
                ax.axhspan(mean - std, mean + std, color="grey", alpha=0.15)
                ax.errorbar([1.0], [mean], yerr=[std], marker="s", color="black", capsize=3, label=b["label"])
            for k, (key, g) in enumerate(series):
                label = VARIANT_NAMES.get(key[0], key[0]) + "".join(
                    f" {PARAM_NAMES.get(x, x)}={v}" for x, v in zip(cells.extras, key[1:], strict=True)
                )
                ax.errorbar(
                    g["alpha"],
                    g[f"{measure}_mean"],
                    yerr=g[f"{measure}_std"],
                    marker="o",
                    capsize=3,
                    color=colors[k % len(colors)],
                    label=label,
                )
            if measure == "spread":
                ax.axhline(COLLAPSED, color="black", lw=0.6, ls=":", label=f"collapsed below {COLLAPSED}")
            ax.set_ylabel(MEASURES[measure], fontsize=8)
            ax.set_title(f"{encoder}: {MEASURES[measure]}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[-1, j].set_xlabel("α (weight of the emotion targets; 1 = Emo-CLAP)")
        axes[0, j].legend(fontsize=7, loc="best")
    suptitle(fig, f"{title}\nembedding measures against α, mean ± std over folds")
    return fig


def _limits(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis limits around the audio points (0.5th–99.5th percentiles, padded), so far prompts do not squash them."""
    low, high = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    pad = 0.08 * np.maximum(high - low, 1e-9)
    return low - pad, high + pad


def _onto_box(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points outside the box moved onto its edge, towards the box's centre; and which were inside."""
    centre, half = (low + high) / 2, (high - low) / 2
    v = points - centre
    with np.errstate(divide="ignore"):
        scale = np.min(np.where(np.abs(v) > 0, half / np.abs(v), np.inf), axis=1)
    inside = scale >= 1
    shrink = np.where(inside, 1.0, 0.96 * scale)
    return centre + v * shrink[:, None], inside


def markdown(
    summary: pd.DataFrame,
    diffs: Sequence[Difference],
    head: Mapping[str, str],
    n_missing: int,
    projection: str,
    drawn: Mapping[str, Mapping[str, tuple[str, int, int] | None]],
    figures: Sequence[str],
) -> str:
    lines = header_lines(head)
    lines += [
        "Where each selected model puts the test utterances (the audio embedding E_a it classifies with), "
        "per fold run, then mean ± sample std over folds. *Silhouettes* (cosine distance) are 1 for tight, "
        "far-apart groups and 0 for overlapping ones. *F–M split within emotions*: the cosine distance between "
        "the female and the male centroid of each emotion, averaged over emotions. *Margin*: cosine to the "
        "true class's prompt minus the largest cosine to another prompt, averaged over a gender's utterances "
        "(positive: correct). *Spread*: mean cosine distance to the embeddings' mean direction (0: every "
        "utterance on one point).",
        "",
        "The method predicts that the gender-aware variants separate genders more than Emo-CLAP: "
        "SL-GEmo-CLAP's targets make same-gender pairs partial positives (weight 1 − α_e), ML-GEmo-CLAP trains "
        "gender on the shared audio encoder. A test session of IEMOCAP holds one female and one male speaker, "
        "so within a fold the gender measures are also speaker measures; configurations are compared on the "
        "same sessions.",
        "",
    ]
    collapsed = summary[summary["spread_mean"] < COLLAPSED]
    if len(collapsed):
        names = ", ".join(f"{r['encoder']}: {r['label']} ({r['spread_mean']:.4f})" for _, r in collapsed.iterrows())
        lines += [
            f"**Collapsed embeddings** (mean spread below {COLLAPSED}): {names}. Their test utterances sit almost "
            "on one point, so the model barely tells them apart; their silhouettes and splits describe tiny "
            "differences.",
            "",
        ]
    if n_missing:
        lines += [
            f"{n_missing} finished fold run(s) logged no {ARTIFACT} (logged before embeddings were, or with "
            "tracking.log_embeddings = false) and are left out.",
            "",
        ]
    for encoder, rows in summary.groupby("encoder", sort=False):
        lines += [f"## {encoder}", ""]
        table = [
            [r["label"], int(r["folds"]), *(_pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in MEASURES)]
            for _, r in rows.iterrows()
        ]
        lines += md_table(["configuration", "folds", *MEASURES.values()], table)
    labels = dict(zip(summary["config"], summary["encoder"] + ": " + summary["label"], strict=True))
    if diffs:
        lines += [
            "## Against Emo-CLAP",
            "",
            "Each gender-aware configuration minus Emo-CLAP of the same encoder, paired over folds "
            f"(mean difference; paired t-test and Wilcoxon signed-rank p-values; a reading at p < {SIGNIFICANT}).",
            "",
        ]
        names = {**MEASURES, "abs_margin_gap": "size of the margin gap"}
        table = [
            [
                labels[d.config],
                names[d.measure],
                d.test.n,
                "–" if not math.isfinite(d.test.mean_diff) else f"{d.test.mean_diff:+.3f}",
                pval(d.test.p_t),
                pval(d.test.p_w),
                d.reading if not d.test.note else f"{d.reading} ({d.test.note})",
            ]
            for d in diffs
        ]
        lines += md_table(
            ["configuration", "measure", "folds", "difference", "p (t)", "p (Wilcoxon)", "reading"], table
        )
    else:
        lines += ["No gender-aware configuration with an Emo-CLAP run of the same encoder to compare with.", ""]
    lines += [
        f"Projection: {'PCA of the audio embeddings' if projection == 'pca' else 't-SNE of the audio embeddings'}, "
        "class prompts (stars) projected with them; one fold per panel. A hollow star lies beyond the panel's "
        "edge, in the direction shown.",
        "",
    ]
    for encoder, shown in drawn.items():
        runs = sorted({(m[1], m[2]) for m in shown.values() if m is not None})
        lacking = [labels[c] for c, m in shown.items() if m is None]
        which = ", ".join(f"fold {f} (seed {s})" for f, s in runs) or "none"
        lines.append(f"- {encoder}: {which}" + (f"; no embeddings of it for {', '.join(lacking)}" if lacking else ""))
    lines.append("")
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def _pm(mean: float, std: float) -> str:
    return "–" if mean is None or not math.isfinite(mean) else f"{mean:.3f} ± {std:.3f}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
