"""Fit and evaluate one cell: one fold of one configuration (encoders x variant x alpha x seed).

Named steps over a flat loop: :func:`setup_model`, :func:`setup_data`, :func:`loss_step`,
:func:`train_epoch`, :func:`evaluate_split` (:func:`embed_split` also returns the embeddings);
:func:`fit_cell` trains and selects the epoch on validation, :func:`evaluate_cell` scores the test session
once, :func:`train_cell` does both (searches only fit). With ``freeze_encoders`` the loaders can yield cached
pooled features (``benchmark.features``) through the same steps. This module never logs to a tracker; the caller passes ``on_epoch`` to see per-epoch figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from benchmark import metrics
from benchmark.config import CellSpec, TrainConfig
from benchmark.data.batching import AudioBudgetSampler, Batch, Collator, LengthBucketSampler, UtteranceDataset
from benchmark.data.folds import Fold, split_fold
from benchmark.data.records import CLASSES, Utterance
from benchmark.faults import checkpoint
from benchmark.features import PooledFeatures, feature_loaders, pooled_features
from benchmark.losses import (
    check_finite,
    clap_loss,
    gender_head_loss,
    gender_prompt_loss,
    multitask_loss,
    soft_targets,
)
from benchmark.models.attention import set_attention
from benchmark.models.clap import ClapModel, ClapOutput, classify, pair_logits
from benchmark.models.encoders import load_audio_encoder, load_text_encoder
from benchmark.resume import TrainingState, load_state, save_state
from benchmark.seeding import seed_everything


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_war: float
    val_uar: float
    lr: float
    logit_scale: float
    seconds: float
    val_uar_by_gender: dict[str, float] = field(default_factory=dict)  # {"F": ..., "M": ...}; {} in older states


@dataclass(frozen=True)
class Embeddings:
    """Where a model put each scored utterance: its audio embedding E_a, and the K class-prompt embeddings.

    Rows follow ``ids`` (sorted, as the predictions); both are L2-normalised, so a prediction is the row's
    argmax of ``audio @ prompts.T``.
    """

    ids: tuple[str, ...]
    audio: np.ndarray  # [n, d] float32
    prompts: np.ndarray  # [K, d] float32, in CLASSES order


@dataclass
class CellResult:
    """A finished cell: test metrics, per-epoch history and per-utterance predictions."""

    spec: CellSpec
    test: dict  # metrics.evaluate() of the test session
    history: list[EpochStats]
    best_epoch: int
    predictions: list[dict]  # records.PREDICTION_COLUMNS: {"id", "speaker", "gender", "emotion", "predicted", ...}
    sizes: dict[str, int]
    device: str
    seconds: float
    classes: tuple[str, ...] = CLASSES
    cross_corpus: dict[str, dict] = field(default_factory=dict)  # name -> {"test": metrics, "predictions": [...]}
    resumed_from: int = 0  # training resumed after this epoch from a saved state (0: from the start)
    embeddings: Embeddings | None = None  # of the test session, by the selected model

    def summary(self) -> dict:
        """The JSON ``train-cell --json`` prints."""
        return {
            **metrics.headline(self.test),
            "confusion": self.test["confusion"],
            "classes": list(self.classes),
            "recall": self.test["recall"],
            "recall_by_gender": {g: m["recall"] for g, m in self.test["by_gender"].items()},
            "best_epoch": self.best_epoch,
            "sizes": self.sizes,
            "device": self.device,
            "seconds": round(self.seconds, 2),
            "history": [asdict(h) for h in self.history],
            "spec": self.spec.to_dict(),
            "cross_corpus": {
                name: {**metrics.headline(c["test"]), "n": len(c["predictions"])}
                for name, c in self.cross_corpus.items()
            },
        }


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default, fp32 (no autocast) on CPU."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 1.0


def setup_model(spec: CellSpec, *, random_init: bool = False) -> tuple[ClapModel, Collator]:
    """Load both encoders (random-init presets seeded by the cell seed) and build the CLAP model.

    ``random_init`` builds hub presets from their shipped architecture with random weights (no download).
    """
    audio = load_audio_encoder(spec.audio_encoder, seed=spec.seed, random_init=random_init)
    text = load_text_encoder(spec.text_encoder, seed=spec.seed + 1, random_init=random_init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed + 2)
        model = ClapModel(audio, text, spec.model)
    if spec.train.freeze_encoders != "none":
        model.freeze_encoders(spec.train.freeze_encoders)
    if spec.train.freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model, Collator(audio.feature_extractor)


def prepare_model(
    model: ClapModel, cfg: TrainConfig, device: torch.device, *, compile_backend: str = "inductor"
) -> ClapModel:
    """Apply the options that make a step faster without changing what it computes, in place.

    Attention kernel (``cfg.attention``), activation checkpointing and ``torch.compile`` of the audio encoder's
    transformer layers (compiled one layer at a time: the layers share code, so one compilation serves all, and
    data-dependent parts of the encoder such as SpecAugment stay outside the compiled graphs). Shapes vary from
    batch to batch; after the first recompilation torch compiles shape-generic graphs, so a run compiles a few
    times, not once per batch shape. ``compile_backend`` is torch.compile's backend (tests use ``aot_eager``).
    """
    encoder = model.audio_encoder
    attention = cfg.attention
    if attention == "auto":
        attention = "sdpa" if device.type == "cuda" else None  # CPU: keep the library default (and CPU results)
    if attention is not None:
        set_attention(encoder, attention)
    if cfg.grad_checkpointing:
        if hasattr(encoder, "activation_checkpointing_enable"):  # transformers >= 5.x
            encoder.activation_checkpointing_enable({"use_reentrant": False})
        else:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.compile:
        layers = getattr(getattr(encoder, "encoder", None), "layers", None)
        for layer in layers if layers is not None else [encoder]:
            layer.compile(backend=compile_backend)
    return model


def make_loader(
    dataset: UtteranceDataset, cfg: TrainConfig, collator: Collator, *, train: bool, seed: int, pin_memory: bool
) -> DataLoader:
    """A loader over ``dataset``: fixed-count length-bucketed batches, or an audio-seconds budget per batch."""
    lengths = [dataset.seconds(i) for i in range(len(dataset))]
    if cfg.batch_seconds:
        sampler = AudioBudgetSampler(lengths, cfg.batch_seconds, cfg.batch_size, shuffle=train, seed=seed)
    else:
        sampler = LengthBucketSampler(lengths, cfg.batch_size, shuffle=train, seed=seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collator,
        num_workers=cfg.num_workers,
        pin_memory=pin_memory,
        persistent_workers=cfg.num_workers > 0,
    )


def split_loader(
    records: Sequence[Utterance], spec: CellSpec, collator: Collator, *, train: bool, pin_memory: bool
) -> DataLoader:
    """Shuffled with random crops for training, ordered with centred crops otherwise."""
    cfg = spec.train
    dataset = UtteranceDataset(records, CLASSES, max_seconds=cfg.max_seconds, train=train, seed=spec.seed)
    return make_loader(dataset, cfg, collator, train=train, seed=spec.seed, pin_memory=pin_memory)


def setup_data(
    fold: Fold,
    spec: CellSpec,
    collator: Collator,
    pin_memory: bool,
    features: PooledFeatures | None = None,
) -> dict[str, DataLoader]:
    """Loaders for the fold's train (shuffled, random crops), val and test (ordered, centred crops) splits.

    With ``features`` (frozen encoders, cached pooled features) the loaders yield feature batches instead.
    """
    if features is not None:
        return feature_loaders(fold, features, spec.train.batch_size, spec.seed, pin_memory)
    return {
        name: split_loader(recs, spec, collator, train=name == "train", pin_memory=pin_memory)
        for name, recs in (("train", fold.train), ("val", fold.val), ("test", fold.test))
    }


def loss_step(model: ClapModel, batch: Batch, spec: CellSpec) -> torch.Tensor:
    """The variant's loss on one batch (the adapter from model outputs to the pure loss functions)."""
    prompt_mode = spec.variant == "ml-gemo-clap" and spec.ml_mode == "prompt"
    out: ClapOutput = model(**batch.model_inputs(), gender_prompts=prompt_mode)
    logits = pair_logits(out.audio_emb, out.class_emb, batch.emotion, out.logit_scale)
    if spec.variant == "sl-gemo-clap":
        return clap_loss(logits, soft_targets(batch.emotion, batch.gender, spec.alpha, spec.target_norm))
    emo = clap_loss(logits, soft_targets(batch.emotion, norm=spec.target_norm))
    if spec.variant == "emo-clap":
        return emo
    if prompt_mode:
        gender_logits = pair_logits(out.audio_emb, out.gender_emb, batch.gender, out.logit_scale)
        gender = gender_prompt_loss(gender_logits, batch.gender, norm=spec.target_norm)
    else:
        gender = gender_head_loss(out.gender_logits, batch.gender)
    return multitask_loss(emo, gender, spec.alpha)


def train_epoch(
    model: ClapModel,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    spec: CellSpec,
    device: torch.device,
    epoch: int,
    progress: bool,
) -> float:
    """One pass over the training split; returns the mean micro-batch loss."""
    cfg = spec.train
    model.train()
    losses = []
    optimizer.zero_grad(set_to_none=True)
    batches = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
    n = len(loader)
    for step, batch in enumerate(batches):
        loss = micro_step(model, batch, spec, device)
        check_finite(loss, f"epoch {epoch}, batch {step} (fold {spec.fold}, {spec.variant}, {spec.audio_encoder})")
        losses.append(float(loss))
        if (step + 1) % cfg.grad_accum == 0 or step + 1 == n:
            optimizer_step(model, optimizer, scheduler, cfg)
        batches.set_postfix(loss=f"{losses[-1]:.3f}")
    return float(np.mean(losses))


def micro_step(model: ClapModel, batch: Batch, spec: CellSpec, device: torch.device) -> torch.Tensor:
    """Forward and backward of one batch (autocast per ``train.precision``); returns the detached loss.

    Gradients accumulate (scaled by ``1 / grad_accum``) until :func:`optimizer_step`.
    """
    batch = batch.to(device)
    dtype = autocast_dtype(spec.train.precision, device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = loss_step(model, batch, spec)
    (loss / spec.train.grad_accum).backward()
    return loss.detach()


def optimizer_step(
    model: ClapModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
) -> None:
    """Clip the accumulated gradients, step the optimiser and the schedule, clear the gradients."""
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def evaluate_split(
    model: ClapModel, loader: DataLoader, device: torch.device, precision: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dataset indices, true class, predicted class) over a split, in loader order."""
    return embed_split(model, loader, device, precision)[:3]


@torch.no_grad()
def embed_split(
    model: ClapModel, loader: DataLoader, device: torch.device, precision: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dataset indices, true class, predicted class, audio embeddings, class-prompt embeddings) over a split.

    Rows in loader order; embeddings as float32 on the CPU, whatever the autocast precision.
    """
    model.eval()
    dtype = autocast_dtype(precision, device)
    index, y_true, y_pred, emb = [], [], [], []
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        class_emb = model.class_embeddings()  # the K prompts, embedded once
        for batch in loader:
            batch = batch.to(device)
            audio = model.embed(**batch.model_inputs())
            y_pred.append(classify(audio, class_emb).cpu())
            emb.append(audio.float().cpu())
            y_true.append(batch.emotion.cpu())
            index.append(batch.index.cpu())
    return (
        torch.cat(index).numpy(),
        torch.cat(y_true).numpy(),
        torch.cat(y_pred).numpy(),
        torch.cat(emb).numpy(),
        class_emb.float().cpu().numpy(),
    )


def make_optimizer(model: ClapModel, cfg: TrainConfig, device: torch.device, total_steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases, norms, the logit scale
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        fused=device.type == "cuda",
    )
    warmup = int(cfg.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, cfg.schedule)
    )
    return optimizer, scheduler


@dataclass
class Fit:
    """A cell trained on its fold's training split, its epoch chosen by validation UAR; the test session unseen."""

    spec: CellSpec
    model: ClapModel
    collator: Collator
    fold: Fold
    loaders: dict[str, DataLoader]
    history: list[EpochStats]
    best_epoch: int
    device: torch.device
    started: float
    resumed_from: int = 0  # the epoch a saved training state resumed after (0: trained from the start)

    @property
    def best_val_uar(self) -> float:
        return max(h.val_uar for h in self.history)


def fit_cell(
    records: Sequence[Utterance],
    spec: CellSpec,
    *,
    progress: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
    cache_dir: str | Path | None = None,
    resume: Path | None = None,
) -> Fit:
    """Train on the fold's training split and keep the epoch with the best validation UAR.

    The test session is not touched: searches stop here, :func:`evaluate_cell` scores it once.

    Args:
        records: the whole corpus (4-class records); the fold is cut from it here.
        spec: the cell.
        progress: show tqdm progress bars (on stderr).
        on_epoch: called after each epoch with its :class:`EpochStats` (used by trackers and pruners; an
            exception raised there stops training and propagates).
        cache_dir: root of the pooled-feature cache (frozen encoders); None: ``$GEMO_CACHE``.
        resume: a file for the training state (:mod:`benchmark.resume`): when it holds a state, training
            resumes after its epoch (``on_epoch`` first sees the restored epochs again); after every epoch
            the state is saved there.

    Raises:
        NonFiniteLossError: a loss became NaN or infinite.
        ResumeError: ``resume`` holds a state that cannot be used (unreadable, or another cell's).
    """
    started = time.perf_counter()
    seed_everything(spec.seed, deterministic=spec.train.deterministic)
    cfg = spec.train
    device = resolve_device(cfg.device)
    fold = split_fold(records, spec.fold, val_fraction=cfg.val_fraction, val_strategy=cfg.val_strategy, seed=spec.seed)
    model, collator = setup_model(spec)
    prepare_model(model.to(device), cfg, device)
    features = None
    if cfg.freeze_encoders != "none" and cfg.feature_cache:
        features = pooled_features(
            model,
            collator,
            records,
            max_seconds=cfg.max_seconds,
            batch_size=cfg.batch_size,
            device=device,
            dtype=autocast_dtype(cfg.precision, device),
            cache_dir=cache_dir,
            progress=progress,
        )
    loaders = setup_data(fold, spec, collator, pin_memory=device.type == "cuda", features=features)
    steps_per_epoch = math.ceil(len(loaders["train"]) / cfg.grad_accum)
    optimizer, scheduler = make_optimizer(model, cfg, device, steps_per_epoch * cfg.epochs)

    history: list[EpochStats] = []
    best_uar, best_epoch, best_state, stopped, resumed_from = -1.0, 0, None, False, 0
    saved = load_state(resume, spec, model, optimizer, scheduler) if resume is not None else None
    if saved is not None:
        history = [EpochStats(**h) for h in saved.history]
        best_uar, best_epoch, best_state = saved.best_uar, saved.best_epoch, saved.best_weights
        stopped, resumed_from = saved.stopped, saved.epoch
        for stats in history if on_epoch is not None else ():
            on_epoch(stats)
    epochs = range(resumed_from + 1, cfg.epochs + 1) if not stopped else range(0)
    for epoch in tqdm(
        epochs, desc="epochs", disable=not progress, unit="epoch", initial=resumed_from, total=cfg.epochs
    ):
        t0 = time.perf_counter()
        for loader in loaders.values():
            loader.dataset.set_epoch(epoch)
            loader.batch_sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        loss = train_epoch(model, loaders["train"], optimizer, scheduler, spec, device, epoch, progress)
        index, y_true, y_pred = evaluate_split(model, loaders["val"], device, cfg.precision)
        val = metrics.evaluate(y_true, y_pred, [fold.val[i].gender for i in index], CLASSES)
        stats = EpochStats(
            epoch=epoch,
            train_loss=loss,
            val_war=val["war"],
            val_uar=val["uar"],
            lr=lr,
            logit_scale=float(model.logit_scale().detach()),
            seconds=time.perf_counter() - t0,
            val_uar_by_gender={g: b["uar"] for g, b in val["by_gender"].items()},
        )
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if stats.val_uar > best_uar:
            best_uar, best_epoch = stats.val_uar, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stopped = bool(cfg.early_stopping and epoch - best_epoch >= cfg.early_stopping)
        if resume is not None:
            state = TrainingState(epoch, [asdict(h) for h in history], best_uar, best_epoch, best_state, stopped)
            save_state(resume, spec, model, optimizer, scheduler, state)
            checkpoint("epoch-saved")
        if stopped:
            break

    model.load_state_dict(best_state)
    return Fit(spec, model, collator, fold, loaders, history, best_epoch, device, started, resumed_from)


def evaluate_cell(fit: Fit, cross_corpus: Mapping[str, Sequence[Utterance]] | None = None) -> CellResult:
    """Score a fitted cell once on its test session, and on the whole of each cross-corpus evaluation corpus."""
    spec, fold, precision = fit.spec, fit.fold, fit.spec.train.precision
    test, predictions, embeddings = score(fit.model, fit.loaders["test"], fold.test, fit.device, precision)
    cross = {}
    for name, recs in (cross_corpus or {}).items():
        loader = split_loader(recs, spec, fit.collator, train=False, pin_memory=False)
        scored = score(fit.model, loader, recs, fit.device, precision)[:2]
        cross[name] = dict(zip(("test", "predictions"), scored, strict=True))
    return CellResult(
        spec=spec,
        test=test,
        history=fit.history,
        best_epoch=fit.best_epoch,
        predictions=predictions,
        sizes={"train": len(fold.train), "val": len(fold.val), "test": len(fold.test)},
        device=str(fit.device),
        seconds=time.perf_counter() - fit.started,
        cross_corpus=cross,
        resumed_from=fit.resumed_from,
        embeddings=embeddings,
    )


def score(
    model: ClapModel, loader: DataLoader, records: Sequence[Utterance], device: torch.device, precision: str
) -> tuple[dict, list[dict], Embeddings]:
    """Metrics (overall and per gender), per-utterance predictions and embeddings, sorted by id, of ``records``."""
    index, y_true, y_pred, audio, prompts = embed_split(model, loader, device, precision)
    recs = [records[i] for i in index]
    predictions = [
        {
            "id": r.id,
            "speaker": r.speaker,
            "gender": r.gender,
            "emotion": r.emotion,
            "predicted": CLASSES[p],
            "agreement": r.agreement_text,
        }
        for r, p in zip(recs, y_pred, strict=True)
    ]
    test = metrics.evaluate(y_true, y_pred, [r.gender for r in recs], CLASSES)
    order = sorted(range(len(recs)), key=lambda i: recs[i].id)
    embeddings = Embeddings(tuple(recs[i].id for i in order), audio[order], prompts)
    return test, [predictions[i] for i in order], embeddings


def train_cell(
    records: Sequence[Utterance],
    spec: CellSpec,
    *,
    progress: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
    cross_corpus: Mapping[str, Sequence[Utterance]] | None = None,
    on_evaluated: Callable[[Fit, CellResult], None] | None = None,
    resume: Path | None = None,
) -> CellResult:
    """Train on the fold's training split, select the epoch by validation UAR, evaluate on the test session.

    Args:
        records: the whole corpus (4-class records); the fold is cut from it here.
        spec: the cell.
        progress: show tqdm progress bars (on stderr).
        on_epoch: called after each epoch with its :class:`EpochStats` (used by trackers).
        cross_corpus: other corpora (name -> records) the selected model is also scored on, whole.
        on_evaluated: called with the fitted model and its result before they are dropped (to save the model).
        resume: the file of the cell's training state (see :func:`fit_cell`).

    Raises:
        NonFiniteLossError: a loss became NaN or infinite.
    """
    fit = fit_cell(records, spec, progress=progress, on_epoch=on_epoch, resume=resume)
    result = evaluate_cell(fit, cross_corpus)
    if on_evaluated is not None:
        on_evaluated(fit, result)
    return result
