"""gemo-bench: a reproducibility benchmark suite for gender-aware contrastive speech emotion recognition."""

__version__ = "0.1.0"
