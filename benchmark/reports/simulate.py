"""Simulated studies for the report benchmark and tests: real MLflow runs from simulated predictions.

Nothing is trained. Each fold run's predictions are drawn from a known model of accuracy (a configuration's
skill, a per-gender shift, a per-speaker effect shared by every configuration, and seed noise), then logged
exactly as the runner logs a real cell, through :class:`benchmark.tracking.Tracker`: a parent run per
configuration, a child run per fold with the flattened params, ``test_*`` metrics computed by
:func:`benchmark.metrics.evaluate` from those predictions, ``predictions.csv``, and optionally the
cross-corpus metrics (``xc_C_*``) and ``cross_corpus/C/predictions.csv``. Reports therefore read a store
indistinguishable in shape from a real one, whose true differences are known.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import provenance
from benchmark.config import CellSpec
from benchmark.data.records import CLASSES, GENDERS, PREDICTION_COLUMNS
from benchmark.data.synthetic import GENERATOR_VERSION, SynthConfig
from benchmark.metrics import evaluate
from benchmark.tracking import Tracker, flatten

# IEMOCAP's 4-class shares (neu, hap, ang, sad)
CLASS_SHARES = (1708 / 5531, 1636 / 5531, 1103 / 5531, 1084 / 5531)


@dataclass(frozen=True)
class SimConfig:
    """A configuration to simulate.

    Attributes:
        skill: probability of a correct prediction for an average speaker.
        gender_shift: added to ``skill`` for each gender (``{"F": 0.05}``: better for female speakers).
        params: extra logged parameters (``{"model.temperature": 0.05}``).
        xc_skill: skill on each evaluation corpus (default: ``skill - 0.15``).
        emb_gender: log ``embeddings.npz`` too, with this weight on the speaker's gender direction (+u for
            female, −u for male) beside weight ``emb_emotion`` on the true class's prompt, plus unit noise;
            None: no embeddings. Embeddings are drawn apart from the predictions.
        confidence: per gender, the probability the logged embeddings give each utterance's predicted class
            (± 0.05, uniform) under the logged logit scale 1 / 0.07, whatever the prediction's correctness: a
            model of known calibration (``{"F": 0.9, "M": 0.6}``). Replaces the ``emb_gender`` embeddings.
        split_penalty: taken off ``skill`` on utterances whose evaluators were split (2 of 3), in a study
            simulated with label agreement (``simulate_study(unanimous=...)``).
    """

    encoder: str
    variant: str
    alpha: float = 1.0
    skill: float = 0.6
    gender_shift: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    xc_skill: Mapping[str, float] = field(default_factory=dict)
    emb_gender: float | None = None
    emb_emotion: float = 1.0
    split_penalty: float = 0.0
    confidence: Mapping[str, float] = field(default_factory=dict)


SIM_LOGIT_SCALE = 1 / 0.07  # the logit scale simulated runs log at every epoch
EMB_DIM = 16  # of simulated embeddings


@dataclass(frozen=True)
class Corpus:
    """Speakers and utterances of a simulated corpus: ``speakers[i]`` has gender ``genders[i]``."""

    speakers: tuple[str, ...]
    genders: tuple[str, ...]
    ids: tuple[str, ...]
    speaker_of: np.ndarray
    emotion: np.ndarray
    agreeing: np.ndarray | None = None  # of EVALUATORS; None: the corpus has no label agreement


EVALUATORS = 3  # of a simulated utterance with label agreement


def iemocap_like(session: int, per_speaker: int, rng: np.random.Generator) -> Corpus:
    """One test session: a female and a male speaker, ``per_speaker`` utterances each."""
    speakers = (f"Ses{session:02d}F", f"Ses{session:02d}M")
    return _corpus(speakers, ("F", "M"), per_speaker, rng, lambda s, i: f"{speakers[s]}_sim_{'FM'[s]}{i:03d}")


def eval_corpus(name: str, n_speakers: int, per_speaker: int, rng: np.random.Generator) -> Corpus:
    """An evaluation corpus with alternating male/female speakers (RAVDESS style: odd actor = male)."""
    speakers = tuple(f"{name}_{i + 1:02d}" for i in range(n_speakers))
    genders = tuple("M" if (i + 1) % 2 else "F" for i in range(n_speakers))
    return _corpus(speakers, genders, per_speaker, rng, lambda s, i: f"{speakers[s]}_{i:03d}")


def _corpus(speakers, genders, per_speaker, rng, name) -> Corpus:
    speaker_of = np.repeat(np.arange(len(speakers)), per_speaker)
    emotion = rng.choice(len(CLASSES), size=len(speaker_of), p=CLASS_SHARES)
    ids = tuple(name(s, i) for s, i in zip(speaker_of, np.tile(np.arange(per_speaker), len(speakers)), strict=True))
    return Corpus(tuple(speakers), tuple(genders), ids, speaker_of, emotion)


def predict(
    corpus: Corpus,
    skill: float,
    gender_shift: Mapping[str, float],
    speaker_effect: np.ndarray,
    rng: np.random.Generator,
    split_penalty: float = 0.0,
) -> np.ndarray:
    """Correct with probability skill + gender shift + speaker effect (− the split penalty), else a uniformly
    drawn wrong class."""
    g = np.asarray(corpus.genders)[corpus.speaker_of]
    p = skill + np.vectorize(lambda x: gender_shift.get(x, 0.0))(g) + speaker_effect[corpus.speaker_of]
    if corpus.agreeing is not None:
        p = p - split_penalty * (corpus.agreeing < EVALUATORS)
    correct = rng.random(len(g)) < np.clip(p, 0.0, 1.0)
    wrong = (corpus.emotion + rng.integers(1, len(CLASSES), len(g))) % len(CLASSES)
    return np.where(correct, corpus.emotion, wrong)


def _write_predictions(path: Path, corpus: Corpus, pred: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    agreement = corpus.agreeing is not None
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PREDICTION_COLUMNS if agreement else PREDICTION_COLUMNS[:5])
        for i, s in enumerate(corpus.speaker_of):
            row = [corpus.ids[i], corpus.speakers[s], corpus.genders[s], CLASSES[corpus.emotion[i]], CLASSES[pred[i]]]
            w.writerow([*row, f"{corpus.agreeing[i]}/{EVALUATORS}"] if agreement else row)


def _write_embeddings(
    path: Path, corpus: Corpus, pred: np.ndarray, cfg: SimConfig, space: tuple[np.ndarray, np.ndarray], rng
) -> None:
    from benchmark.reports.embeddings import save

    prompts, gender_dir = space
    dim = prompts.shape[1]
    g = np.asarray(corpus.genders)[corpus.speaker_of]
    if cfg.confidence:
        prompts, audio = _confident(pred, g, cfg.confidence, dim, rng)
    else:
        sign = np.where(g == "F", 1.0, -1.0)[:, None]
        noise = rng.normal(0.0, 1.0 / np.sqrt(dim), (len(g), dim))
        audio = cfg.emb_emotion * prompts[corpus.emotion] + cfg.emb_gender * sign * gender_dir + noise
    save(
        path,
        ids=corpus.ids,
        speakers=np.asarray(corpus.speakers)[corpus.speaker_of],
        genders=g,
        emotions=np.asarray(CLASSES)[corpus.emotion],
        predicted=np.asarray(CLASSES)[pred],
        audio=audio / np.linalg.norm(audio, axis=1, keepdims=True),
        prompts=prompts,
    )


def _confident(pred: np.ndarray, genders: np.ndarray, confidence: Mapping[str, float], dim: int, rng):
    """Orthonormal prompts, and unit audio embeddings whose softmax at :data:`SIM_LOGIT_SCALE` gives the
    predicted class the gender's confidence (± 0.05): cosine δ to that prompt, 0 to the others, where
    1 / (1 + (K − 1) e^(−s δ)) is the confidence."""
    k = len(CLASSES)
    basis = np.linalg.qr(rng.normal(size=(dim, k + 1)))[0].T  # k prompts and one direction orthogonal to them
    c = np.array([confidence[x] for x in genders]) + rng.uniform(-0.05, 0.05, len(genders))
    c = np.clip(c, 1 / k + 1e-3, 0.999)
    delta = np.log((k - 1) * c / (1 - c)) / SIM_LOGIT_SCALE
    audio = delta[:, None] * basis[pred] + np.sqrt(1 - delta**2)[:, None] * basis[k]
    return basis[:k], audio


def _embedding_space(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A fold's class prompts (unit rows) and a unit gender direction, shared by every configuration."""
    x = rng.normal(size=(len(CLASSES) + 1, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:-1], x[-1]


def _scores(corpus: Corpus, pred: np.ndarray) -> dict:
    groups = np.asarray(corpus.genders)[corpus.speaker_of]
    return evaluate(corpus.emotion, pred, groups, CLASSES, GENDERS)


def simulate_study(
    tracker: Tracker,
    study_name: str,
    configs: Sequence[SimConfig],
    *,
    folds: Sequence[int] = (1, 2, 3, 4, 5),
    seeds: Sequence[int] = (0,),
    per_speaker: int = 60,
    speaker_sd: float = 0.05,
    seed_sd: float = 0.02,
    eval_corpora: Mapping[str, tuple[int, int]] | None = None,
    data: Mapping[str, Any] | None = None,
    seed: int = 0,
    epochs: int = 1,
    weights: str = "simulated",
    emb_dim: int = EMB_DIM,
    unanimous: Mapping[str, float] | None = None,
) -> int:
    """Log a simulated study into ``tracker``'s experiment; returns the number of fold runs written.

    Args:
        eval_corpora: ``{name: (speakers, utterances per speaker)}`` to score each fold run on.
        data: ``data.*`` params (default: the embedded corpus, not the control).
        speaker_sd: spread of the per-speaker accuracy effect (shared by all configurations).
        seed_sd: spread of the per-(config, fold, seed) accuracy shift.
        epochs: per-epoch history logged per fold run (validation figures rising to the final ones).
        weights: the ``gemo.weights`` tag's kind (``simulated (<encoder>)``), e.g. ``pretrained`` to see how
            reports treat runs of pre-trained checkpoints.
        emb_dim: dimension of the simulated embeddings (configurations with ``emb_gender``).
        unanimous: log label agreement in the predictions: per gender, the share of utterances all three
            evaluators agree on (the rest 2 of 3); None: predictions without the agreement column.
    """
    rng = np.random.default_rng(seed)
    sessions = {f: iemocap_like(f, per_speaker, rng) for f in folds}
    if unanimous is not None:  # drawn apart: the same seed gives the same utterances with or without agreement
        agree_rng = np.random.default_rng([seed, 65537])
        for f, c in sessions.items():
            share = np.array([unanimous[g] for g in c.genders])[c.speaker_of]
            agreeing = np.where(agree_rng.random(len(c.ids)) < share, EVALUATORS, EVALUATORS - 1)
            sessions[f] = dataclasses.replace(c, agreeing=agreeing)
    effects = {f: rng.normal(0, speaker_sd, 2) for f in folds}
    # embeddings draw from their own generators: a store with them has the same predictions as one without
    spaces = {f: _embedding_space(np.random.default_rng([seed, f]), emb_dim) for f in folds}
    emb_rng = np.random.default_rng([seed, len(folds), 7919])
    xc = {c: eval_corpus(c, n, k, rng) for c, (n, k) in (eval_corpora or {}).items()}
    xc_effects = {c: rng.normal(0, speaker_sd, len(corpus.speakers)) for c, corpus in xc.items()}
    data = {
        "kind": "embedded",
        "seed": 0,
        "size": per_speaker * 2 * len(folds),
        "control": False,
        "difficulty": SynthConfig.difficulty,
        "version": GENERATOR_VERSION,
        **(data or {}),
    }
    if xc:
        data.setdefault("eval_corpora", ",".join(xc))
    fingerprint = hashlib.sha256(json.dumps([study_name, sorted(data.items())], default=str).encode()).hexdigest()[:16]
    base_tags = {
        **provenance.tags(),
        "gemo.study": study_name,
        "gemo.data_source": str(data["kind"]),
        "gemo.data_fingerprint": fingerprint,
    }
    written = 0
    for cfg in configs:
        for s in seeds:
            # the params the runner logs: the whole cell spec flattened (less the fold), then the data's
            spec = CellSpec(
                audio_encoder=cfg.encoder,
                text_encoder="tiny-roberta",
                variant=cfg.variant,
                fold=0,
                alpha=1.0 if cfg.variant == "emo-clap" else cfg.alpha,
                seed=s,
            )
            params = {
                **flatten({k: v for k, v in spec.to_dict().items() if k != "fold"}),
                **cfg.params,
                **{f"data.{k}": v for k, v in data.items()},
            }
            config_id = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
            tags = {
                **base_tags,
                "gemo.config_id": config_id,
                "gemo.audio_encoder": cfg.encoder,
                "gemo.variant": cfg.variant,
                "gemo.weights": f"{weights} ({cfg.encoder})",
                "gemo.text_weights": "simulated (tiny-roberta)",
                "gemo.device": "simulated",
            }
            name = f"{cfg.encoder} {cfg.variant} a={params['alpha']:g} s{s}"
            parent = tracker.parent(config_id, name, params, tags)
            for f in folds:
                shift = rng.normal(0, seed_sd)
                corpus = sessions[f]
                pred = predict(corpus, cfg.skill + shift, cfg.gender_shift, effects[f], rng, cfg.split_penalty)
                scores = _scores(corpus, pred)
                run_id = tracker.start_cell(
                    parent, f"{name} fold {f}", {**params, "fold": f}, {**tags, "gemo.cell_id": f"{config_id}-{f}"}
                )
                metrics = {"test_war": scores["war"], "test_uar": scores["uar"], "best_epoch": epochs}
                # the figures a real run logs at each epoch (steps from 1), rising to the last, the best
                history = {}
                for e in range(1, epochs + 1):
                    share = 0.5 + 0.5 * e / epochs
                    history[e] = {"train_loss": 1.5 - share, "val_war": share * scores["war"], "lr": 0.0}
                    history[e] |= {"val_uar": share * scores["uar"], "logit_scale": SIM_LOGIT_SCALE}
                tracker.log_steps(run_id, history)
                for g, m in scores["by_gender"].items():
                    metrics |= {f"test_war_{g}": m["war"], f"test_uar_{g}": m["uar"]}
                with tempfile.TemporaryDirectory() as tmp:
                    _write_predictions(Path(tmp) / "predictions.csv", corpus, pred)
                    if cfg.emb_gender is not None or cfg.confidence:
                        _write_embeddings(Path(tmp) / "embeddings.npz", corpus, pred, cfg, spaces[f], emb_rng)
                    for c, ecorpus in xc.items():
                        skill = cfg.xc_skill.get(c, cfg.skill - 0.15) + shift
                        epred = predict(ecorpus, skill, cfg.gender_shift, xc_effects[c], rng)
                        _write_predictions(Path(tmp) / "cross_corpus" / c / "predictions.csv", ecorpus, epred)
                        e = _scores(ecorpus, epred)
                        metrics |= {f"xc_{c}_war": e["war"], f"xc_{c}_uar": e["uar"], f"xc_{c}_n": e["n"]}
                        for g, m in e["by_gender"].items():
                            metrics |= {f"xc_{c}_war_{g}": m["war"], f"xc_{c}_uar_{g}": m["uar"]}
                    tracker.log_metrics(run_id, metrics)
                    tracker.log_artifacts(run_id, Path(tmp))
                tracker.end(run_id)
                written += 1
            tracker.update_parent(parent, config_id)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmark.reports.simulate OUT``: a demo study with cross-corpus metrics, and its reports."""
    import argparse
    import os

    from benchmark.reports import ablation, bias, cross_corpus

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", help="folder for the store (OUT/mlflow.db) and the reports (OUT/reports)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", "simulated_demo")
    if not tracker.runs("cell", "FINISHED"):
        configs = [
            SimConfig(
                "tiny-wavlm",
                "emo-clap",
                skill=0.55,
                gender_shift={"M": 0.04},
                xc_skill={"ravdess": 0.42, "cremad": 0.38},
            ),
            SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, skill=0.6, xc_skill={"ravdess": 0.45, "cremad": 0.40}),
            SimConfig(
                "tiny-wavlm",
                "ml-gemo-clap",
                0.8,
                skill=0.57,
                gender_shift={"M": 0.02},
                xc_skill={"ravdess": 0.43, "cremad": 0.37},
            ),
        ]
        # RAVDESS: 24 actors x 28 four-class speech files; CREMA-D: 91 speakers, about 54 each
        simulate_study(tracker, "simulated_demo", configs, eval_corpora={"ravdess": (24, 28), "cremad": (91, 54)})
    for write in (ablation.write_ablation_report, bias.write_bias_report, cross_corpus.write_cross_corpus_report):
        print(write(tracker, "simulated_demo", out / "reports").markdown)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
