"""Model FLOPs of a training step and the peak FLOP/s of the device, for model FLOP utilisation (MFU).

The work of a step is counted as if each utterance went through the audio encoder alone, unpadded: forward and
backward, by ``torch.utils.flop_counter.FlopCounterMode`` on a copy of the encoder on the ``meta`` device (shapes
only, so even a large encoder is counted in a second on any machine). Padding, recomputation (activation
checkpointing) and redundant prompts are not useful work and do not count; the text side (K short prompts per
step, well under 1 % of a step) is left out. All layers count, also those LayerDrop skips at random.

The cost of an utterance is a quadratic in its length (convolutions and projections are linear, attention is
quadratic), fitted through three counted lengths and checked against a fourth.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark.data.records import SAMPLE_RATE

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets; the first name that occurs in the device
# name wins, so the specific names come before the generic ones.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float | None], ...] = (
    ("H100 NVL", "H100 NVL", None),  # clocks differ by product; no single figure
    ("H100 PCIe", "H100 PCIe bf16 dense", 756.0),
    ("H100", "H100 SXM bf16 dense", 989.4),
    ("H200", "H200 bf16 dense", 989.4),
    ("A100", "A100 bf16 dense", 312.0),
)


@dataclass(frozen=True)
class Peak:
    """Peak FLOP/s of a device and where the figure comes from; ``flops`` is None when unknown."""

    flops: float | None
    source: str


def table_peak(device_name: str) -> Peak:
    """The data-sheet bf16 peak of a GPU named ``device_name`` (``NVIDIA H100 80GB HBM3``), if the table has it."""
    for key, source, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            if tflops is None:
                break
            return Peak(tflops * 1e12, f"table: {source}")
    return Peak(None, f"unknown device {device_name!r}: pass --peak-tflops")


def measure_matmul_peak(device: torch.device, size: int = 1024, seconds: float = 0.5) -> Peak:
    """The FLOP/s of a large fp32 matmul on ``device``: the practical peak of a CPU, which has no data sheet here."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n < 3:
        a @ b
        n += 1
    return Peak(2 * size**3 * n / elapsed, f"measured: fp32 {size}x{size} matmul")


def count_encoder_flops(model: nn.Module, seconds: float) -> int:
    """FLOPs of forward + backward of a speech encoder on one unpadded utterance of ``seconds``.

    Counted on a fresh copy of the architecture on the meta device (the weights do not matter), in eval mode so
    that no SpecAugment mask is drawn; the backward pass goes from a scalar of the last hidden state.
    """
    config = copy.deepcopy(model.config)
    if hasattr(config, "_attn_implementation"):
        # attention as plain matmuls, which the counter sees whatever kernel the real run uses
        config._attn_implementation = "eager"
    with torch.device("meta"):
        meta = type(model)(config)
    meta.eval()
    x = torch.zeros(1, round(seconds * SAMPLE_RATE), device="meta")
    with FlopCounterMode(display=False) as counter:
        meta(x).last_hidden_state.mean().backward()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class FlopModel:
    """Training FLOPs of one utterance as ``a + b s + c s^2`` in its length ``s`` (seconds).

    ``check`` is the relative error of the fit at a length it was not fitted on.
    """

    coefficients: tuple[float, float, float]
    points: tuple[tuple[float, int], ...]
    check: tuple[float, int, float]

    @classmethod
    def fit(cls, model: nn.Module, max_seconds: float) -> FlopModel:
        lengths = (min(0.5, max_seconds / 4), max_seconds / 2, max_seconds)
        points = tuple((s, count_encoder_flops(model, s)) for s in lengths)
        c, b, a = np.polyfit([p[0] for p in points], [float(p[1]) for p in points], 2)
        fitted = cls((float(a), float(b), float(c)), points, (0.0, 0, 0.0))
        at = 0.75 * max_seconds
        counted = count_encoder_flops(model, at)
        return cls(fitted.coefficients, points, (at, counted, fitted(at) / counted - 1.0))

    def __call__(self, seconds: float) -> float:
        a, b, c = self.coefficients
        return a + b * seconds + c * seconds**2

    def total(self, lengths: Sequence[float]) -> float:
        return float(sum(self(s) for s in lengths))

    def describe(self) -> dict:
        return {
            "counted": "audio encoder, forward + backward, one unpadded utterance (FlopCounterMode, meta device)",
            "per_utterance": "a + b*s + c*s^2 (s: seconds)",
            "coefficients": {"a": self.coefficients[0], "b": self.coefficients[1], "c": self.coefficients[2]},
            "points": [{"seconds": s, "flops": f} for s, f in self.points],
            "check": {"seconds": self.check[0], "flops": self.check[1], "relative_error": self.check[2]},
        }
