"""Contrastive losses of Emo-CLAP and GEmo-CLAP: pure tensor functions, no logging, no model.

Ground truth is not the identity: pairs sharing an emotion (and, for SL-GEmo-CLAP, a gender) are positives.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from benchmark.config import check_alpha

Norm = Literal["sum", "softmax"]
MLMode = Literal["head", "prompt"]


def same_label(labels: torch.Tensor) -> torch.Tensor:
    """M[i, j] = 1 if labels[i] == labels[j] else 0, as float."""
    return (labels[:, None] == labels[None, :]).float()


def soft_targets(
    emotion: torch.Tensor, gender: torch.Tensor | None = None, alpha: float = 1.0, norm: Norm = "sum"
) -> torch.Tensor:
    """Target distribution over the N pairs of each row.

    M = α·M_e + (1 − α)·M_g with M_e, M_g the same-emotion and same-gender indicator matrices; with
    ``gender=None`` M = M_e (Emo-CLAP). Each row is then a distribution: M divided by its row sum
    (``norm="sum"``, the default reading) or a softmax over the row (``norm="softmax"``).

    Args:
        emotion: [N] integer class labels.
        gender: [N] integer gender labels, or None.
        alpha: α_e in [0, 1]; α = 1 gives Emo-CLAP's targets.
        norm: ``"sum"`` or ``"softmax"``.

    Returns:
        [N, N] float tensor whose rows sum to 1.
    """
    alpha = check_alpha(alpha)
    m = same_label(emotion)
    if gender is not None:
        m = alpha * m + (1.0 - alpha) * same_label(gender)
    if norm == "sum":
        # The diagonal is always 1 (every sample shares its own labels), so no row sum is zero.
        return m / m.sum(dim=1, keepdim=True)
    if norm == "softmax":
        return torch.softmax(m, dim=1)
    raise ValueError(f"norm must be 'sum' or 'softmax', got {norm!r}")


def clap_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """½ [KL(T ‖ softmax_rows(C)) + KL(Tᵀ ‖ softmax_rows(Cᵀ))], each KL summed over a row, mean over rows.

    Args:
        logits: [N, N] similarity logits C (audio rows, text columns).
        targets: [N, N] target matrix T, e.g. from :func:`soft_targets`.
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1] or logits.shape != targets.shape:
        raise ValueError(f"logits and targets must be the same N x N shape, got {logits.shape} and {targets.shape}")
    targets = targets.to(logits.dtype)
    audio_to_text = F.kl_div(F.log_softmax(logits, dim=1), targets, reduction="batchmean")
    text_to_audio = F.kl_div(F.log_softmax(logits.T, dim=1), targets.T, reduction="batchmean")
    return 0.5 * (audio_to_text + text_to_audio)


def gender_head_loss(gender_logits: torch.Tensor, gender: torch.Tensor) -> torch.Tensor:
    """L_gender for ML-GEmo-CLAP's ``head`` mode: cross-entropy of a gender classifier."""
    return F.cross_entropy(gender_logits, gender)


def gender_prompt_loss(gender_pair_logits: torch.Tensor, gender: torch.Tensor, norm: Norm = "sum") -> torch.Tensor:
    """L_gender for ML-GEmo-CLAP's ``prompt`` mode: the CLAP KL loss against same-gender targets M_g.

    Args:
        gender_pair_logits: [N, N] logits of audio against each sample's gender prompt.
        gender: [N] integer gender labels.
    """
    return clap_loss(gender_pair_logits, soft_targets(gender, norm=norm))


def multitask_loss(emo_loss: torch.Tensor, gender_loss: torch.Tensor, alpha: float) -> torch.Tensor:
    """ML-GEmo-CLAP: L = α·L_emo + (1 − α)·L_gender."""
    alpha = check_alpha(alpha)
    return alpha * emo_loss + (1.0 - alpha) * gender_loss


class NonFiniteLossError(FloatingPointError):
    """A loss that is NaN or infinite; training stops instead of carrying it on."""


def check_finite(loss: torch.Tensor, where: str) -> None:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(f"non-finite loss ({value}) at {where}")
