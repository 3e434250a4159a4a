"""Training throughput: a plain training loop and the suite's own step, side by side in one process.

Both loops train the same random-init model (a preset's real architecture) on the same pool of utterances,
whose lengths are drawn from IEMOCAP's 4-class durations and cropped as a study crops them, written as WAV files
and read through the suite's dataset. After a few warm-up batches each loop makes one timed pass over the pool.

- **naive**: what a plain script does: fp32, random batches of ``naive_batch`` (8) utterances, every sample's
  prompt through the text encoder (N rows instead of the K distinct prompts), plain ``torch.optim.AdamW``, no
  gradient clipping, the attention kernels ``transformers`` picks by default, no loader workers.
- **suite**: :func:`benchmark.train.train_epoch` itself, with the model set up by
  :func:`~benchmark.train.setup_model` + :func:`~benchmark.train.prepare_model` and batches from
  :func:`~benchmark.train.make_loader` under the given :class:`~benchmark.config.TrainConfig` (bf16 autocast,
  audio-seconds budget batches, fused attention, fused AdamW on CUDA, pinned memory, workers, optional
  ``torch.compile`` and activation checkpointing).

Figures: audio seconds and utterances per second of wall time, model FLOP utilisation (useful FLOPs of the
unpadded utterances, :mod:`benchmark.perf.flops`, over the device's peak), peak memory (CUDA), the speed-up, and
the hours a study's training steps would take at each speed (:mod:`benchmark.perf.cost`).
"""

from __future__ import annotations

import datetime as dt
import gc
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from benchmark import provenance
from benchmark.config import CellSpec, ClapConfig, TrainConfig
from benchmark.data.batching import UtteranceDataset
from benchmark.data.records import CLASSES, GENDERS, SAMPLE_RATE, Utterance
from benchmark.losses import clap_loss, gender_head_loss, gender_prompt_loss, multitask_loss, soft_targets
from benchmark.models.clap import ClapModel
from benchmark.models.encoders import load_audio_encoder
from benchmark.models.presets import TINY_PRESETS, describe_weights
from benchmark.perf.durations import DurationModel
from benchmark.perf.flops import FlopModel, Peak, measure_matmul_peak, table_peak
from benchmark.seeding import seed_everything
from benchmark.train import (
    make_loader,
    make_optimizer,
    micro_step,
    optimizer_step,
    prepare_model,
    resolve_device,
    setup_model,
    train_epoch,
)


@dataclass(frozen=True)
class ThroughputConfig:
    """What to measure.

    Attributes:
        audio_encoder, text_encoder: presets; hub presets are built with random weights from their shipped
            architecture (nothing is downloaded).
        variant, alpha, ml_mode: the training objective (the loss is cheap; the encoders dominate).
        utterances: size of the pool each loop makes one timed pass over.
        warmup: batches each loop runs before its timed pass (compilation, allocator and kernel autotuning).
        naive_batch: utterances per batch of the naive loop.
        naive: run the naive loop too (False: the suite's step alone, no speed-up; for option variants of a
            preset whose naive figure is measured once).
        train: the suite step's options (``max_seconds`` is also the crop of both loops).
        proj_dim: CLAP projection dimension.
        seed: durations, weights, batch order.
        peak_tflops: override the device's peak (TFLOP/s) for MFU.
    """

    audio_encoder: str = "wavlm-base-plus"
    text_encoder: str = "roberta-base"
    variant: str = "emo-clap"
    alpha: float = 1.0
    ml_mode: str = "head"
    utterances: int = 1024
    warmup: int = 5
    naive_batch: int = 8
    naive: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=64, batch_seconds=320.0))
    proj_dim: int = 512
    seed: int = 0
    peak_tflops: float | None = None

    def __post_init__(self) -> None:
        if self.utterances < 1 or self.warmup < 0 or self.naive_batch < 1:
            raise ValueError("utterances and naive_batch must be >= 1, warmup >= 0")
        if self.peak_tflops is not None and not self.peak_tflops > 0:
            raise ValueError(f"peak_tflops must be positive, got {self.peak_tflops}")

    def cell(self) -> CellSpec:
        return CellSpec(
            audio_encoder=self.audio_encoder,
            text_encoder=self.text_encoder,
            variant=self.variant,
            fold=1,
            alpha=self.alpha,
            ml_mode=self.ml_mode,
            seed=self.seed,
            model=ClapConfig(proj_dim=self.proj_dim),
            train=self.train,
        )


def naive_loss(model: ClapModel, batch, spec: CellSpec) -> torch.Tensor:
    """The variant's loss in its plain formulation: one prompt per sample, N rows through the text encoder.

    Same value and gradients as :func:`benchmark.train.loss_step`, which encodes the K distinct prompts once.
    """
    pooled = model.pooled_audio(batch.input_values, batch.sample_mask)
    audio = model.embed_audio(pooled)
    scale = model.logit_scale()
    text = model.embed_text(model.class_ids[batch.emotion], model.class_mask[batch.emotion])
    logits = scale * audio @ text.T
    if spec.variant == "sl-gemo-clap":
        return clap_loss(logits, soft_targets(batch.emotion, batch.gender, spec.alpha, spec.target_norm))
    emo = clap_loss(logits, soft_targets(batch.emotion, norm=spec.target_norm))
    if spec.variant == "emo-clap":
        return emo
    if spec.ml_mode == "prompt":
        gender_text = model.embed_text(model.gender_ids[batch.gender], model.gender_mask[batch.gender])
        gender = gender_prompt_loss(scale * audio @ gender_text.T, batch.gender, norm=spec.target_norm)
    else:
        gender = gender_head_loss(model.gender_head(pooled), batch.gender)
    return multitask_loss(emo, gender, spec.alpha)


def write_pool(folder: Path, n: int, rng: np.random.Generator) -> list[Utterance]:
    """``n`` noise WAVs with IEMOCAP-like durations and random labels (the weights are random too)."""
    durations = DurationModel.iemocap().sample(n, rng)
    records = []
    for i, seconds in enumerate(durations):
        samples = max(1, round(float(seconds) * SAMPLE_RATE))
        path = folder / f"bench_{i:05d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(samples)).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        gender = GENDERS[int(rng.integers(len(GENDERS)))]
        records.append(
            Utterance(
                id=f"bench_{i:05d}",
                path=path,
                session=1,
                dialog="bench",
                speaker=f"bench{gender}",
                gender=gender,
                emotion=CLASSES[int(rng.integers(len(CLASSES)))],
                duration=samples / SAMPLE_RATE,
                raw_label="bench",
            )
        )
    return records


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def _figures(name: str, seconds: float, steps: int, ds: UtteranceDataset, flops: float, peak: Peak, memory) -> dict:
    audio = sum(ds.seconds(i) for i in range(len(ds)))
    flops_per_s = flops / seconds
    return {
        "loop": name,
        "steps": steps,
        "utterances": len(ds),
        "audio_seconds": audio,
        "seconds": seconds,
        "audio_s_per_s": audio / seconds,
        "utterances_per_s": len(ds) / seconds,
        "model_flops": flops,
        "model_flops_per_s": flops_per_s,
        "mfu": flops_per_s / peak.flops if peak.flops else None,
        "peak_memory_bytes": memory,
    }


def run_naive(cfg: ThroughputConfig, ds: UtteranceDataset, device: torch.device, flops: float, peak: Peak) -> dict:
    spec = replace(cfg.cell(), train=replace(cfg.train, precision="fp32"))
    model, collator = setup_model(spec, random_init=True)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.train.lr, weight_decay=spec.train.weight_decay)
    loader = DataLoader(
        ds,
        batch_size=cfg.naive_batch,
        shuffle=True,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(cfg.seed),
    )

    def step(batch) -> None:
        batch = batch.to(device)
        naive_loss(model, batch, spec).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    _reset_memory(device)
    for _, batch in zip(range(cfg.warmup), loader, strict=False):
        step(batch)
    _sync(device)
    start = time.perf_counter()
    for batch in loader:
        step(batch)
    _sync(device)
    seconds = time.perf_counter() - start
    figures = _figures("naive", seconds, len(loader), ds, flops, peak, _peak_memory(device))
    return figures


def run_suite(cfg: ThroughputConfig, ds: UtteranceDataset, device: torch.device, flops: float, peak: Peak) -> dict:
    spec = cfg.cell()
    model, collator = setup_model(spec, random_init=True)
    prepare_model(model.to(device), spec.train, device)
    pin = device.type == "cuda"
    loader = make_loader(ds, spec.train, collator, train=True, seed=cfg.seed, pin_memory=pin)
    optimizer, scheduler = make_optimizer(model, spec.train, device, 2 * len(loader) + cfg.warmup)

    _reset_memory(device)
    model.train()
    loader.batch_sampler.set_epoch(0)
    for _, batch in zip(range(cfg.warmup), loader, strict=False):
        micro_step(model, batch, spec, device)
        optimizer_step(model, optimizer, scheduler, spec.train)
    loader.batch_sampler.set_epoch(1)
    _sync(device)
    start = time.perf_counter()
    train_epoch(model, loader, optimizer, scheduler, spec, device, epoch=1, progress=False)
    _sync(device)
    seconds = time.perf_counter() - start
    figures = _figures("suite", seconds, len(loader), ds, flops, peak, _peak_memory(device))
    return figures


def run_throughput(cfg: ThroughputConfig, study=None) -> dict:
    """Measure both loops and return the figures (see the module docstring); ``study`` adds the hours estimate."""
    seed_everything(cfg.seed, deterministic=cfg.train.deterministic)
    device = resolve_device(cfg.train.device)
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="gemo-bench-throughput-") as tmp:
        records = write_pool(Path(tmp), cfg.utterances, np.random.default_rng(cfg.seed))
        ds = UtteranceDataset(records, CLASSES, max_seconds=cfg.train.max_seconds, train=True, seed=cfg.seed)
        ds.preload()
    lengths = [ds.seconds(i) for i in range(len(ds))]

    with torch.device("meta"):  # only the architecture is needed to count FLOPs
        probe = load_audio_encoder(cfg.audio_encoder, random_init=True).model
    flop_model = FlopModel.fit(probe, cfg.train.max_seconds)
    flops = flop_model.total(lengths)
    if cfg.peak_tflops:
        peak = Peak(cfg.peak_tflops * 1e12, "given: --peak-tflops")
    elif device.type == "cuda":
        peak = table_peak(torch.cuda.get_device_name(device))
    else:
        peak = measure_matmul_peak(device)

    naive = run_naive(cfg, ds, device, flops, peak) if cfg.naive else None
    suite = run_suite(cfg, ds, device, flops, peak)
    sha, dirty = provenance.git_state()
    out = {
        "created": started.strftime("%Y-%m-%d %H:%M UTC"),
        "device": provenance.device_name(str(device)),
        "device_type": device.type,
        "versions": provenance.versions(),
        "git_sha": sha,
        "git_dirty": dirty,
        "audio_encoder": cfg.audio_encoder,
        "text_encoder": cfg.text_encoder,
        "weights": {
            "audio": _random_weights(cfg.audio_encoder, "audio"),
            "text": _random_weights(cfg.text_encoder, "text"),
        },
        "variant": cfg.variant,
        "alpha": cfg.alpha,
        "config": _config_dict(cfg),
        "durations": {
            **DurationModel.iemocap().describe(),
            "crop_seconds": cfg.train.max_seconds,
            "pool_utterances": len(lengths),
            "pool_audio_seconds": float(sum(lengths)),
            "pool_mean_seconds": float(np.mean(lengths)),
        },
        "flops": {**flop_model.describe(), "per_audio_second": flops / sum(lengths)},
        "peak_flops": {"flops": peak.flops, "source": peak.source},
        "naive": naive,
        "suite": suite,
        "speedup": suite["audio_s_per_s"] / naive["audio_s_per_s"] if naive else None,
    }
    if study is not None:
        from benchmark.perf.cost import study_train_audio_seconds

        cost = study_train_audio_seconds(study)
        out["study"] = {
            **cost,
            "path": str(study.path) if study.path else None,
            "hours_naive": cost["train_audio_seconds"] / naive["audio_s_per_s"] / 3600 if naive else None,
            "hours_suite": cost["train_audio_seconds"] / suite["audio_s_per_s"] / 3600,
            "note": "training steps only, every epoch run (no early stopping), every cell at this preset's speed",
        }
    return out


def _random_weights(spec: str, modality: str) -> str:
    return describe_weights(spec, modality) if spec in TINY_PRESETS else f"random-init (architecture of {spec})"


def _config_dict(cfg: ThroughputConfig) -> dict:
    d = asdict(cfg)
    d["train"] = asdict(cfg.train)
    return d


def format_report(result: dict) -> str:
    """The figures as a short plain-text table (one column per loop that ran)."""
    loops = [(title, result[key]) for key, title in (("naive", "naive loop"), ("suite", "suite step")) if result[key]]
    hours = "GPU-h" if result["device_type"] == "cuda" else "h on this device"

    def mem(v):
        return "n/a (CPU)" if v is None else f"{v / 2**30:.1f} GiB"

    def mfu(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    d = result["durations"]
    rows = [
        ("audio-s/s", lambda f: f"{f['audio_s_per_s']:.4g}"),
        ("utterances/s", lambda f: f"{f['utterances_per_s']:.4g}"),
        ("MFU", lambda f: mfu(f["mfu"])),
        ("peak memory", lambda f: mem(f["peak_memory_bytes"])),
        ("steps", lambda f: str(f["steps"])),
        ("seconds", lambda f: f"{f['seconds']:.2f}"),
    ]
    lines = [
        f"training throughput: {result['audio_encoder']} + {result['text_encoder']} ({result['weights']['audio']}), "
        f"{result['variant']}, on {result['device']}",
        f"{d['pool_utterances']} utterances drawn from IEMOCAP's 4-class durations, cropped at {d['crop_seconds']:g} s: "
        f"{d['pool_audio_seconds']:.0f} s of audio per pass (mean {d['pool_mean_seconds']:.2f} s)",
        f"model FLOPs: {result['flops']['per_audio_second'] / 1e9:.3g} GFLOP per audio-second (training, unpadded); "
        f"peak {_flops(result['peak_flops']['flops'])} ({result['peak_flops']['source']})",
        "",
        f"{'':14}" + "".join(f"{title:>16}" for title, _ in loops),
        *(f"{name:14}" + "".join(f"{cell(f):>16}" for _, f in loops) for name, cell in rows),
        "",
        f"speed-up: {result['speedup']:.2f}x" if result["speedup"] else "speed-up: not measured (suite step only)",
    ]
    if "study" in result:
        s = result["study"]
        naive = f"{s['hours_naive']:.1f} {hours} naive, " if s["hours_naive"] is not None else ""
        lines.append(
            f"{s['study']} ({s['cells']} cells, {'/'.join(map(str, s['epochs']))} epochs, "
            f"{s['train_audio_seconds'] / 1e6:.2f} M audio-s of training): {naive}"
            f"{s['hours_suite']:.1f} {hours} with the suite's step ({s['note']})"
        )
    return "\n".join(lines)


def _flops(v: float | None) -> str:
    return "unknown" if v is None else f"{v / 1e12:.3g} TFLOP/s"
