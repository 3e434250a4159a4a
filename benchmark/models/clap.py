"""The CLAP model: audio and text encoders, projection heads, logit scale, prompts, gender head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import ClapConfig
from benchmark.models.encoders import AudioEncoder, TextEncoder


@dataclass
class ClapOutput:
    """What one forward pass returns; :func:`pair_logits` turns it into loss inputs."""

    audio_emb: torch.Tensor  # [N, d], L2-normalised
    class_emb: torch.Tensor  # [K, d], L2-normalised, one row per class prompt
    logit_scale: torch.Tensor  # scalar
    gender_emb: torch.Tensor | None = None  # [2, d] gender prompts (ML prompt mode)
    gender_logits: torch.Tensor | None = None  # [N, 2] gender head (ML head mode)


def projection(in_dim: int, out_dim: int, layers: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


def pair_logits(audio_emb: torch.Tensor, prompt_emb: torch.Tensor, labels: torch.Tensor, scale) -> torch.Tensor:
    """C[i, j] = s · E_a[i] · E_t[j] where E_t[j] is the prompt of sample j's label.

    The K distinct prompts are encoded once and gathered into the N x N matrix, which gives the same
    logits (and gradients) as encoding the N prompts one per sample, at K/N of the text cost.
    """
    return scale * (audio_emb @ prompt_emb.T)[:, labels]


def receptive_field(config) -> int:
    """Samples the encoder's convolutional feature extractor needs for one frame (``conv_kernel``, ``conv_stride``)."""
    need = 1
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        need = (need - 1) * stride + kernel
    return need


class AudioSide:
    """The audio half of inference, shared by :class:`ClapModel` and a saved model (``benchmark.models.saved``).

    Needs ``audio_encoder``, ``audio_proj``, ``uses_attention_mask`` and ``class_embeddings()``.
    """

    def pooled_audio(self, input_values: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the encoder's frame features over the frames that cover real (non-padded) samples.

        A clip shorter than the encoder's receptive field (400 samples, 25 ms, for every hub preset) would
        yield no frame: it is zero-padded to that length, and the padding counts as real, so it yields one.
        Longer clips are untouched (their masks already start with that many ones).
        """
        need = receptive_field(self.audio_encoder.config)
        if input_values.shape[1] < need:
            input_values = F.pad(input_values, (0, need - input_values.shape[1]))
            sample_mask = F.pad(sample_mask, (0, need - sample_mask.shape[1]))
        head = torch.arange(sample_mask.shape[1], device=sample_mask.device) < need
        sample_mask = torch.maximum(sample_mask, head.to(sample_mask.dtype))  # no host sync: same ops every batch
        kwargs = {"attention_mask": sample_mask} if self.uses_attention_mask else {}
        frames = self.audio_encoder(input_values, **kwargs).last_hidden_state
        frame_mask = self.audio_encoder._get_feature_vector_attention_mask(frames.shape[1], sample_mask)
        frame_mask = frame_mask.to(frames.dtype).unsqueeze(-1)
        return (frames * frame_mask).sum(1) / frame_mask.sum(1).clamp(min=1.0)

    def embed_audio(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_proj(pooled), dim=-1)

    def embed(
        self,
        input_values: torch.Tensor | None = None,
        sample_mask: torch.Tensor | None = None,
        *,
        pooled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L2-normalised audio embeddings E_a of a batch: from the waveforms, or from cached pooled features."""
        if pooled is None:
            pooled = self.pooled_audio(input_values, sample_mask)
        return self.embed_audio(pooled)

    @torch.no_grad()
    def predict(
        self,
        input_values: torch.Tensor | None = None,
        sample_mask: torch.Tensor | None = None,
        class_emb: torch.Tensor | None = None,
        *,
        pooled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Class index per utterance: argmax cosine similarity to the class prompts."""
        if class_emb is None:
            class_emb = self.class_embeddings()
        return classify(self.embed(input_values, sample_mask, pooled=pooled), class_emb)


def classify(audio_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """Class index per row of ``audio_emb``: argmax cosine similarity to the (normalised) class prompts."""
    return (audio_emb @ class_emb.T).argmax(dim=-1)


class ClapModel(AudioSide, nn.Module):
    """Emo-CLAP / GEmo-CLAP model over a speech encoder and a text encoder."""

    def __init__(self, audio: AudioEncoder, text: TextEncoder, config: ClapConfig) -> None:
        super().__init__()
        self.config = config
        self.audio_encoder = audio.model
        self.text_encoder = text.model
        self.uses_attention_mask = audio.uses_attention_mask
        self.audio_proj = projection(audio.hidden_size, config.proj_dim, config.proj_layers)
        self.text_proj = projection(text.hidden_size, config.proj_dim, config.proj_layers)
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / config.temperature)), requires_grad=config.learnable_temperature
        )
        self.gender_head = nn.Linear(audio.hidden_size, len(config.gender_words)) if config.gender_head else None
        self._register_prompts("class", text.tokenizer(config.class_prompts(), padding=True, return_tensors="pt"))
        self._register_prompts("gender", text.tokenizer(config.gender_prompts(), padding=True, return_tensors="pt"))
        self.frozen_audio = False
        self.frozen_text = False

    def _register_prompts(self, name: str, tokens) -> None:
        self.register_buffer(f"{name}_ids", tokens["input_ids"], persistent=False)
        self.register_buffer(f"{name}_mask", tokens["attention_mask"], persistent=False)

    def freeze_encoders(self, which: str = "all") -> None:
        """Freeze the pre-trained audio encoder (``audio``) or both encoders (``all``).

        A frozen encoder gets no gradients and stays in eval mode (no dropout, as when its features are
        cached). With the text encoder frozen, the prompts' first-token states are computed once here
        instead of at every step, so only the heads and the logit scale train.
        """
        if which not in ("audio", "all"):
            raise ValueError(f"freeze_encoders must be 'audio' or 'all', got {which!r}")
        self.audio_encoder.requires_grad_(False)
        self.frozen_audio = True
        if which == "all":
            self.text_encoder.requires_grad_(False)
            self.frozen_text = True
            with torch.no_grad():
                for name in ("class", "gender"):
                    states = self._first_token_states(getattr(self, f"{name}_ids"), getattr(self, f"{name}_mask"))
                    self.register_buffer(f"{name}_states", states, persistent=False)
        self.train(self.training)

    def freeze_feature_encoder(self) -> None:
        """Fix the audio encoder's convolutional feature encoder; its transformer layers still train.

        This is what transformers' ``freeze_feature_encoder`` calls (HuBERT's model class lacks that method): the
        CNN's parameters get no gradients and its output no longer asks for one, so backward stops there.
        """
        self.audio_encoder.feature_extractor._freeze_parameters()

    def train(self, mode: bool = True) -> ClapModel:
        super().train(mode)
        if self.frozen_audio:
            self.audio_encoder.eval()
        if self.frozen_text:
            self.text_encoder.eval()
        return self

    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def _first_token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]

    def embed_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """First-token (``<s>``) hidden state, projected and L2-normalised."""
        return F.normalize(self.text_proj(self._first_token_states(input_ids, attention_mask)), dim=-1)

    def _prompt_embeddings(self, name: str) -> torch.Tensor:
        if self.frozen_text:  # the text encoder is fixed: its prompt states were computed once
            return F.normalize(self.text_proj(getattr(self, f"{name}_states")), dim=-1)
        return self.embed_text(getattr(self, f"{name}_ids"), getattr(self, f"{name}_mask"))

    def class_embeddings(self) -> torch.Tensor:
        return self._prompt_embeddings("class")

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        sample_mask: torch.Tensor | None = None,
        *,
        pooled: torch.Tensor | None = None,
        gender_prompts: bool = False,
    ) -> ClapOutput:
        """Outputs for a batch of waveforms, or of already pooled encoder features (``pooled``)."""
        if pooled is None:
            pooled = self.pooled_audio(input_values, sample_mask)
        return ClapOutput(
            audio_emb=self.embed_audio(pooled),
            class_emb=self.class_embeddings(),
            logit_scale=self.logit_scale(),
            gender_emb=self._prompt_embeddings("gender") if gender_prompts else None,
            gender_logits=self.gender_head(pooled) if self.gender_head is not None else None,
        )
