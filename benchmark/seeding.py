"""The one seeding function of the suite."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch, and choose whether torch uses deterministic algorithms.

    Called once at the start of a cell; data code takes its own ``random.Random``/``torch.Generator``
    derived from the seed instead of reseeding globals.

    Args:
        seed: the cell's seed.
        deterministic: ask torch for deterministic kernels (``warn_only``: an operation without one warns and
            runs anyway). CPU results are reproducible either way; on CUDA this trades speed for run-to-run
            equality (``[train] deterministic``).

    Returns:
        The seed, so callers can log what was used.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # transformers' SpecAugment masks draw from NumPy's global RNG
    torch.manual_seed(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matmuls (read when CUDA starts); harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # cuDNN's autotuner would re-tune for every new padded length; bucketed batches have many.
    torch.backends.cudnn.benchmark = False
    return seed
