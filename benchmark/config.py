"""The frozen config objects of one cell: :class:`ClapConfig`, :class:`TrainConfig` and :class:`CellSpec`.

A study file is parsed into these once (``benchmark.studies``) and nothing mutates them later. They and their
validation need no torch, so parsing and checking a study, and every command that only reads runs (the
reports), start without loading torch or transformers; ``benchmark.train`` and ``benchmark.models.clap``
consume them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from benchmark.data.records import CLASS_WORDS, CLASSES, GENDER_WORDS, GENDERS

# attention kernels of the audio encoder (benchmark.models.attention)
ATTENTION_KINDS: tuple[str, ...] = ("auto", "sdpa", "eager")
# how validation speakers are chosen (benchmark.data.folds)
VAL_STRATEGIES: tuple[str, ...] = ("stratified", "session")


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise ValueError if it is not in [0, 1]."""
    alpha = float(alpha)
    if not (0.0 <= alpha <= 1.0):  # also rejects NaN
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha


@dataclass(frozen=True)
class ClapConfig:
    """Model choices the paper leaves open; every field is a study-spec field.

    Attributes:
        proj_dim: dimension d of the shared embedding space.
        proj_layers: 1 (linear) or 2 (Linear-GELU-Linear, hidden width d) projection heads.
        temperature: initial (or fixed) temperature; the logit scale is 1 / temperature.
        learnable_temperature: learn the log logit scale (CLIP practice) or keep it fixed.
        max_logit_scale: clamp on the logit scale (100 in CLIP).
        prompt_template: class prompt, ``{label}`` replaced by each class word.
        class_words: the word for each class, in class order.
        gender_template: gender prompt for ML-GEmo-CLAP's ``prompt`` mode.
        gender_words: the word for each gender, in ``GENDERS`` order.
        gender_head: add a linear gender classifier on the pooled audio feature (ML ``head`` mode).
    """

    proj_dim: int = 512
    proj_layers: int = 2
    temperature: float = 0.07
    learnable_temperature: bool = True
    max_logit_scale: float = 100.0
    prompt_template: str = "The emotion is {label}."
    class_words: tuple[str, ...] = tuple(CLASS_WORDS[c] for c in CLASSES)
    gender_template: str = "The gender is {label}."
    gender_words: tuple[str, ...] = tuple(GENDER_WORDS[g] for g in GENDERS)
    gender_head: bool = False

    def __post_init__(self) -> None:
        if self.proj_dim < 1:
            raise ValueError(f"proj_dim must be positive, got {self.proj_dim}")
        if self.proj_layers not in (1, 2):
            raise ValueError(f"proj_layers must be 1 or 2, got {self.proj_layers}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")
        if 1.0 / self.temperature > self.max_logit_scale:
            raise ValueError(
                f"temperature {self.temperature} gives a logit scale above max_logit_scale {self.max_logit_scale}"
            )
        for name in ("prompt_template", "gender_template"):
            if "{label}" not in getattr(self, name):
                raise ValueError(f"{name} must contain '{{label}}', got {getattr(self, name)!r}")

    def class_prompts(self) -> list[str]:
        return [self.prompt_template.format(label=w) for w in self.class_words]

    def gender_prompts(self) -> list[str]:
        return [self.gender_template.format(label=w) for w in self.gender_words]


VARIANTS: tuple[str, ...] = ("emo-clap", "sl-gemo-clap", "ml-gemo-clap")
ML_MODES: tuple[str, ...] = ("head", "prompt")
SCHEDULES: tuple[str, ...] = ("cosine", "linear", "constant")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
SPEED_OPTIONS: tuple[str, ...] = ("attention", "compile", "grad_checkpointing", "deterministic")
FREEZE: tuple[str, ...] = ("none", "audio", "all")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and data choices of a cell (PAPER.md's defaults where it has them).

    Attributes:
        epochs: passes over the training split (unknown in the paper).
        batch_size: utterances per optimiser micro-step; ``batch_size * grad_accum`` is the effective batch.
        grad_accum: micro-steps per optimiser step.
        lr: peak AdamW learning rate (2e-5 for pre-trained encoders).
        weight_decay: AdamW weight decay.
        warmup_ratio: share of optimiser steps with linear warm-up.
        schedule: decay after warm-up: cosine, linear or constant.
        max_grad_norm: gradient clipping (0 disables).
        max_seconds: crop length; random window in training, centred in evaluation.
        early_stopping: stop after this many epochs without a better validation UAR (0 disables).
        val_fraction: share of the training sessions held out for validation (``stratified``).
        val_strategy: ``stratified`` (emotion x gender) or ``session`` (the next training session).
        num_workers: DataLoader worker processes.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``, ...
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
        batch_seconds: when > 0, batches are formed by this budget of padded audio seconds over length buckets
            (:class:`~benchmark.data.batching.AudioBudgetSampler`), with ``batch_size`` as the most utterances
            per batch; 0 keeps batches of exactly ``batch_size``.
        attention: audio-encoder attention kernel: ``auto`` (fused SDPA on CUDA, the library's default on CPU),
            ``sdpa`` or ``eager`` (see :mod:`benchmark.models.attention`).
        compile: ``torch.compile`` the audio encoder's transformer layers (pays off on GPUs over many steps).
        grad_checkpointing: recompute the audio encoder's layer activations in backward (large encoders on
            small GPUs: less memory, about a third more compute).
        deterministic: ask torch for deterministic kernels (:func:`~benchmark.seeding.seed_everything`). CPU
            runs are reproducible either way; on CUDA, off lets torch pick faster kernels whose float sums may
            land in another order from run to run.

        freeze_encoders: ``none`` (fine-tune both encoders), ``audio`` (keep the audio encoder fixed; the
            text encoder still learns on the K prompts) or ``all`` (only the projection heads, the logit
            scale and the gender head train).
        freeze_feature_encoder: keep the audio encoder's convolutional feature encoder (the CNN over the
            waveform) fixed while its transformer layers fine-tune, as transformers' ``freeze_feature_encoder``
            does in its wav2vec 2.0 fine-tuning recipes. The paper's reimplementation fine-tunes all weights
            (off by default); on, backward stops at the CNN's output, which saves compute and memory.
        feature_cache: with a frozen audio encoder, pool each utterance's audio features once (centred
            crop of ``max_seconds``) and cache them on disk (``benchmark.features``), so training never
            runs the audio encoder; off, the frozen encoder runs on every batch (random training crops).
        resumable: save the training state after every epoch (beside the store; :mod:`benchmark.resume`),
            so that a cell whose process dies mid-training (preempted, out of time, killed) resumes after its
            last saved epoch on the next ``run``, with the result an uninterrupted run gives. It costs disk
            (about four times the model's size per running cell) and a write per epoch.

    ``attention``, ``compile``, ``grad_checkpointing`` and ``deterministic`` change how fast a step runs, not
    what it computes (up to float rounding), and ``resumable`` only what survives a kill, so none of them is
    part of a cell's identity (:meth:`CellSpec.identity`).
    """

    epochs: int = 10
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    max_seconds: float = 10.0
    early_stopping: int = 0
    val_fraction: float = 0.1
    val_strategy: str = "stratified"
    num_workers: int = 0
    device: str = "auto"
    precision: str = "auto"
    batch_seconds: float = 0.0
    attention: str = "auto"
    compile: bool = False
    grad_checkpointing: bool = False
    deterministic: bool = True
    freeze_encoders: str = "none"
    freeze_feature_encoder: bool = False
    feature_cache: bool = True
    resumable: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        if self.early_stopping < 0 or self.num_workers < 0 or self.max_grad_norm < 0:
            raise ValueError("early_stopping, num_workers and max_grad_norm must be >= 0")
        if not (self.batch_seconds >= 0 and math.isfinite(self.batch_seconds)):
            raise ValueError(f"batch_seconds must be >= 0 (0: fixed batch_size), got {self.batch_seconds}")
        _check_choice("attention", self.attention, ATTENTION_KINDS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("val_strategy", self.val_strategy, VAL_STRATEGIES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("freeze_encoders", self.freeze_encoders, FREEZE)


@dataclass(frozen=True)
class CellSpec:
    """Everything that determines one cell's result (with the data it runs on and the code version).

    Attributes:
        audio_encoder, text_encoder: preset names, hub ids or local directories.
        variant: ``emo-clap``, ``sl-gemo-clap`` or ``ml-gemo-clap``.
        alpha: α_e; must be 1 for Emo-CLAP.
        ml_mode: ML-GEmo-CLAP's gender task: ``head`` (classifier, cross-entropy) or ``prompt`` (KL on M_g).
        target_norm: turning the target matrix into row distributions: ``sum`` or ``softmax``.
        fold: the test session.
        seed: seeds weights of random-init presets, validation split, crops, batch order, dropout.
    """

    audio_encoder: str
    text_encoder: str
    variant: str
    fold: int
    alpha: float = 1.0
    ml_mode: str = "head"
    target_norm: str = "sum"
    seed: int = 0
    model: ClapConfig = field(default_factory=ClapConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check_choice("variant", self.variant, VARIANTS)
        _check_choice("ml_mode", self.ml_mode, ML_MODES)
        _check_choice("target_norm", self.target_norm, ("sum", "softmax"))
        check_alpha(self.alpha)
        if self.variant == "emo-clap" and self.alpha != 1.0:
            raise ValueError(
                f"alpha applies only to the gender-aware variants; emo-clap needs alpha=1, got {self.alpha}"
            )
        wants_head = self.variant == "ml-gemo-clap" and self.ml_mode == "head"
        if self.model.gender_head != wants_head:
            object.__setattr__(self, "model", replace(self.model, gender_head=wants_head))

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """What determines the cell's result: :meth:`to_dict` without the speed-only train options.

        Options added after the first studies (``batch_seconds``, ``freeze_encoders``, ``freeze_feature_encoder``,
        ``feature_cache``) join only when they differ from their defaults, so cells of studies written before them
        keep their identity (and finished runs are still found when a study is resumed).
        """
        d = self.to_dict()
        for key in (*SPEED_OPTIONS, "resumable"):
            d["train"].pop(key)
        added = (("batch_seconds", 0.0), ("freeze_encoders", "none"), ("freeze_feature_encoder", False))
        for key, default in (*added, ("feature_cache", True)):
            if getattr(self.train, key) == default:
                d["train"].pop(key)
        return d


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
