"""Warnings that entry points silence: known, harmless, and repeated on every step."""

from __future__ import annotations

import warnings


def silence_known_warnings() -> None:
    """Hide a torch deprecation that transformers' WavLM attention triggers on every forward pass (and a tracing
    warning of torch.compile).

    Called by entry points (the CLI and worker processes), never on import. Kept apart from the encoders so
    that commands that never load a model (the reports) do not import torch to call it.
    """
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
    # torch.compile (train.compile) inspects the .grad of non-leaf tensors while tracing; harmless
    warnings.filterwarnings(
        "ignore", message="The .grad attribute of a Tensor that is not a leaf", category=UserWarning
    )
