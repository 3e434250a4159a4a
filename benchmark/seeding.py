"""The one seeding function of the suite."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch, and switch torch to deterministic algorithms.

    Called once at the start of a cell; data code takes its own ``random.Random``/``torch.Generator``
    derived from the seed instead of reseeding globals.

    Returns:
        The seed, so callers can log what was used.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # transformers' SpecAugment masks draw from NumPy's global RNG
    torch.manual_seed(seed)
    # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return seed
