"""Attention kernels for the audio encoders: the same attention, computed by fused kernels where possible.

wav2vec 2.0, HuBERT and data2vec-audio pick their kernel through ``transformers``' attention interface
(``sdpa`` or ``eager``). WavLM has no such switch: its layers call ``F.multi_head_attention_forward`` with
``need_weights=True`` and a float (gated relative position) bias, which materialises the full attention matrix in
forward and backward. :func:`set_attention` can replace that with ``F.scaled_dot_product_attention`` and the bias
as an additive mask (the padding folded into it as ``-inf``), which lets PyTorch use its memory-efficient kernel on
CUDA. Outputs and gradients are those of the eager path up to float rounding (tested).
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def _is_wavlm_attention(module: nn.Module) -> bool:
    return type(module).__name__ == "WavLMAttention" and hasattr(module, "gru_rel_pos_linear")


def _wavlm_sdpa_forward(
    self,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
    index: int = 0,
    **kwargs,
):
    """WavLM's gated relative-position attention through ``scaled_dot_product_attention``.

    Same arithmetic as ``WavLMAttention.forward``: bias[b, h, i, j] = gate[b, h, i] * P[h, i, j], where the gate
    comes from the layer input and P from the relative-position buckets of the first layer, plus -inf on padded
    keys. P is kept as [H, T, T] and broadcast over the batch instead of being repeated per utterance. The bias is
    built in the attention's dtype (bf16 under autocast, as the eager path ends up too) in one fused
    multiply-add, in a buffer whose rows are padded to 16 elements: the memory-efficient kernel needs that
    alignment and would otherwise copy the bias in every layer.
    """
    bsz, tgt_len, _ = hidden_states.size()
    if position_bias is None:
        position_bias = self.compute_bias(tgt_len, tgt_len)  # [H, T, T]
    heads = hidden_states.view(bsz, tgt_len, self.num_heads, -1).permute(0, 2, 1, 3)  # [B, H, T, d]
    proj = self.gru_rel_pos_linear(heads).view(*heads.shape[:-1], 2, 4).sum(-1)
    gate_a, gate_b = torch.sigmoid(proj).chunk(2, dim=-1)
    gate = gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0  # [B, H, T, 1]

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(bsz, tgt_len, self.num_heads, self.head_dim).transpose(1, 2)

    q = split(self.q_proj(hidden_states))
    k = split(self.k_proj(hidden_states))
    v = split(self.v_proj(hidden_states))
    padded = tgt_len + (-tgt_len % 16)
    keys = torch.zeros(bsz, 1, 1, padded, dtype=q.dtype, device=q.device)
    if attention_mask is not None:
        keys[:, 0, 0, :tgt_len].masked_fill_(attention_mask.ne(1), float("-inf"))
    table = F.pad(position_bias.to(q.dtype), (0, padded - tgt_len))  # [H, T, T + pad]
    bias = torch.addcmul(keys, gate.to(q.dtype), table)[..., :tgt_len]  # [B, H, T, T], 16-aligned rows
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
    out = self.out_proj(out.transpose(1, 2).reshape(bsz, tgt_len, self.embed_dim))
    return out, None, position_bias


def set_attention(model: nn.Module, kind: str) -> str:
    """Choose the attention kernel of a speech encoder in place; returns what it now uses.

    Args:
        model: a ``transformers`` speech encoder (WavLM, wav2vec 2.0, HuBERT, data2vec-audio).
        kind: ``sdpa`` (fused kernels; WavLM's bias as an additive mask) or ``eager`` (the reference math).
    """
    if kind not in ("sdpa", "eager"):
        raise ValueError(f"attention must be sdpa or eager here, got {kind!r}")
    wavlm = [m for m in model.modules() if _is_wavlm_attention(m)]
    if wavlm:
        for module in wavlm:
            if kind == "sdpa":
                module.forward = types.MethodType(_wavlm_sdpa_forward, module)
            elif "forward" in vars(module):
                del module.forward  # back to the class's own (eager) forward
        return kind
    if getattr(model.config, "_attn_implementation", kind) != kind:
        model.set_attn_implementation(kind)
    return model.config._attn_implementation
