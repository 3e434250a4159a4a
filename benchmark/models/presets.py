"""Encoder presets: short names for hub checkpoints, and tiny random-init configs built in code.

A preset name, a hub id (``microsoft/wavlm-base-plus``) and a local checkpoint directory are all accepted
wherever an encoder is named; :func:`resolve_encoder` tells which one a string is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# transformers is imported inside the functions that build configs: resolving and validating encoder names
# (every study file, every report command) needs none of it.

Modality = Literal["audio", "text"]


@dataclass(frozen=True)
class HubPreset:
    """A pre-trained checkpoint on a model hub, loaded with ``AutoModel.from_pretrained``.

    ``config`` and ``extractor`` hold the checkpoint's architecture and feature-extractor settings (from its
    ``config.json`` / ``preprocessor_config.json``), so a random-init model of the real shape can be built
    offline (:func:`hub_config`), e.g. for throughput measurements. They are never used for pre-trained runs,
    which read the checkpoint's own files.
    """

    name: str
    modality: Modality
    hub_id: str
    family: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    extractor: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TinyPreset:
    """A small random-init model of a real architecture, for offline runs and tests."""

    name: str
    modality: Modality
    family: str
    make_config: Callable[[], PretrainedConfig]
    # Mirrors the checkpoint family's feature extractor: group-norm conv stacks (wav2vec2-base, HuBERT-base)
    # are trained on zero-padded input without an attention mask.
    return_attention_mask: bool = True


@dataclass(frozen=True)
class EncoderRef:
    """What an encoder string resolved to: exactly one of ``preset`` or ``source`` tells how to load it."""

    spec: str
    modality: Modality
    source: str  # a hub id or a local directory, or "" for a tiny preset
    tiny: TinyPreset | None = None

    @property
    def pretrained(self) -> bool:
        return self.tiny is None


# Architecture of the checkpoints behind the hub presets, as their config.json files give it: the shape
# (which sets the cost of a step) and the regularisation that is active while fine-tuning (dropout, LayerDrop,
# SpecAugment). Base models: a group-norm conv stack without biases and post-LN transformer layers; large
# models: layer-norm conv stack and pre-LN ("stable") layers. WavLM adds gated relative position buckets;
# data2vec-audio has its own stack of small positional convolutions.
_CONV = dict(conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))
_BASE = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    feat_extract_norm="group",
    do_stable_layer_norm=False,
    conv_bias=False,
    **_CONV,
)
_LARGE = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    conv_bias=True,
    **_CONV,
)
_REG = dict(
    hidden_dropout=0.1,
    attention_dropout=0.1,
    activation_dropout=0.0,
    feat_proj_dropout=0.1,
    layerdrop=0.1,
    apply_spec_augment=True,
    mask_time_prob=0.05,
    mask_time_length=10,
    mask_feature_prob=0.0,
)
_POS = dict(num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)
_WAVLM = dict(num_buckets=320, max_bucket_distance=800)
# data2vec-audio: no feat_extract_norm switch (always layer-norm convs); 5 positional convs of width 19
_D2V = dict(num_conv_pos_embeddings=5, num_conv_pos_embedding_groups=16, conv_pos_kernel_size=19)


def _without(d: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


_MASKED = dict(return_attention_mask=True, do_normalize=True)
_UNMASKED = dict(return_attention_mask=False, do_normalize=True)  # group-norm checkpoints take no mask

HUB_PRESETS: dict[str, HubPreset] = {
    p.name: p
    for p in (
        HubPreset(
            "wavlm-base-plus",
            "audio",
            "microsoft/wavlm-base-plus",
            "wavlm",
            {**_BASE, **_REG, **_POS, **_WAVLM, "layerdrop": 0.05},
            dict(return_attention_mask=True, do_normalize=False),
        ),
        HubPreset(
            "wavlm-large",
            "audio",
            "microsoft/wavlm-large",
            "wavlm",
            {**_LARGE, **_REG, **_POS, **_WAVLM, "conv_bias": False},
            _MASKED,
        ),
        HubPreset(
            "hubert-base",
            "audio",
            "facebook/hubert-base-ls960",
            "hubert",
            {**_BASE, **_REG, **_POS, "activation_dropout": 0.1},
            _UNMASKED,
        ),
        HubPreset(
            "hubert-large", "audio", "facebook/hubert-large-ll60k", "hubert", {**_LARGE, **_REG, **_POS}, _MASKED
        ),
        HubPreset("wav2vec2-base", "audio", "facebook/wav2vec2-base", "wav2vec2", {**_BASE, **_REG, **_POS}, _UNMASKED),
        HubPreset(
            "wav2vec2-large", "audio", "facebook/wav2vec2-large-lv60", "wav2vec2", {**_LARGE, **_REG, **_POS}, _MASKED
        ),
        HubPreset(
            "data2vec-base",
            "audio",
            "facebook/data2vec-audio-base",
            "data2vec",
            {**_without(_BASE, "feat_extract_norm", "do_stable_layer_norm"), **_REG, **_D2V},
            _MASKED,
        ),
        HubPreset(
            "data2vec-large",
            "audio",
            "facebook/data2vec-audio-large",
            "data2vec",
            {**_without(_LARGE, "feat_extract_norm", "do_stable_layer_norm"), **_REG, **_D2V},
            _MASKED,
        ),
        HubPreset(
            "roberta-base",
            "text",
            "FacebookAI/roberta-base",
            "roberta",
            dict(
                vocab_size=50265,
                hidden_size=768,
                num_hidden_layers=12,
                num_attention_heads=12,
                intermediate_size=3072,
                max_position_embeddings=514,
                type_vocab_size=1,
                layer_norm_eps=1e-5,
                hidden_dropout_prob=0.1,
                attention_probs_dropout_prob=0.1,
                pad_token_id=1,
                bos_token_id=0,
                eos_token_id=2,
            ),
        ),
    )
}

_CONFIG_CLASSES: dict[str, str] = {
    "wavlm": "WavLMConfig",
    "hubert": "HubertConfig",
    "wav2vec2": "Wav2Vec2Config",
    "data2vec": "Data2VecAudioConfig",
    "roberta": "RobertaConfig",
}


def config_class(family: str) -> type[PretrainedConfig]:
    """The ``transformers`` config class of an encoder family (``wavlm``, ``roberta``, ...)."""
    import transformers

    return getattr(transformers, _CONFIG_CLASSES[family])


def hub_config(name: str) -> PretrainedConfig:
    """The ``transformers`` config of a hub preset's architecture, built offline (no download)."""
    if name not in HUB_PRESETS:
        raise UnknownEncoderError(f"{name!r} is not a hub preset (choose one of: {', '.join(HUB_PRESETS)})")
    preset = HUB_PRESETS[name]
    return config_class(preset.family)(**preset.config)


# Shared shape of the tiny audio encoders: the real 7-layer conv stack (320x down-sampling, 50 frames/s)
# with few channels, and a 2-layer transformer. About 0.1 M parameters each.
_TINY_AUDIO = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    conv_dim=(32,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    layerdrop=0.0,
)


def _tiny_wavlm() -> PretrainedConfig:
    return config_class("wavlm")(**_TINY_AUDIO, num_buckets=32, max_bucket_distance=100)


def _tiny_hubert() -> PretrainedConfig:
    return config_class("hubert")(**_TINY_AUDIO)


def _tiny_wav2vec2() -> PretrainedConfig:
    return config_class("wav2vec2")(**_TINY_AUDIO)


def _tiny_data2vec() -> PretrainedConfig:
    return config_class("data2vec")(**_TINY_AUDIO)


def _tiny_roberta() -> PretrainedConfig:
    from benchmark.models.tokenizer import TINY_VOCAB_SIZE

    return config_class("roberta")(
        vocab_size=TINY_VOCAB_SIZE,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=66,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


TINY_PRESETS: dict[str, TinyPreset] = {
    p.name: p
    for p in (
        TinyPreset("tiny-wavlm", "audio", "wavlm", _tiny_wavlm, return_attention_mask=True),
        TinyPreset("tiny-hubert", "audio", "hubert", _tiny_hubert, return_attention_mask=False),
        TinyPreset("tiny-wav2vec2", "audio", "wav2vec2", _tiny_wav2vec2, return_attention_mask=False),
        TinyPreset("tiny-data2vec", "audio", "data2vec", _tiny_data2vec, return_attention_mask=True),
        TinyPreset("tiny-roberta", "text", "roberta", _tiny_roberta),
    )
}

PRESET_NAMES: tuple[str, ...] = (*HUB_PRESETS, *TINY_PRESETS)


class UnknownEncoderError(ValueError):
    """An encoder string that is neither a preset, a local directory nor a plausible hub id."""


def resolve_encoder(spec: str, modality: Modality) -> EncoderRef:
    """Turn an encoder string into an :class:`EncoderRef`.

    Args:
        spec: a preset name (``wavlm-base-plus``, ``tiny-wavlm``), a hub id (``org/name``) or a local
            checkpoint directory.
        modality: ``"audio"`` or ``"text"``; a preset of the other modality is an error.

    Raises:
        UnknownEncoderError: naming the string and listing the presets.
    """
    if spec in TINY_PRESETS:
        tiny = TINY_PRESETS[spec]
        _check_modality(spec, tiny.modality, modality)
        return EncoderRef(spec=spec, modality=modality, source="", tiny=tiny)
    if spec in HUB_PRESETS:
        hub = HUB_PRESETS[spec]
        _check_modality(spec, hub.modality, modality)
        return EncoderRef(spec=spec, modality=modality, source=hub.hub_id)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UnknownEncoderError(f"{modality} encoder {spec!r}: directory has no config.json")
        return EncoderRef(spec=spec, modality=modality, source=str(path.resolve()))
    # A hub id is "name" or "org/name"; anything with more path parts must be a local directory.
    if spec.count("/") == 1 and all(part and not part.startswith(".") for part in spec.split("/")):
        return EncoderRef(spec=spec, modality=modality, source=spec)
    raise UnknownEncoderError(
        f"unknown {modality} encoder {spec!r}: not a preset ({', '.join(_names(modality))}), "
        "not a local checkpoint directory, and not a hub id of the form org/name"
    )


def _names(modality: Modality) -> list[str]:
    return [n for n, p in {**HUB_PRESETS, **TINY_PRESETS}.items() if p.modality == modality]


def _check_modality(spec: str, found: Modality, wanted: Modality) -> None:
    if found != wanted:
        raise UnknownEncoderError(
            f"{spec!r} is a {found} encoder preset, but a {wanted} encoder is needed "
            f"(choose one of: {', '.join(_names(wanted))})"
        )


PRETRAINED_LR = 2e-5  # PAPER.md: AdamW at 2e-5 when fine-tuning pre-trained encoders
RANDOM_INIT_LR = 3e-3  # tiny random-init presets learn from scratch and need a larger step


def default_lr(audio_encoder: str) -> float:
    """The learning rate a cell uses when none is given: by whether the audio encoder is pre-trained."""
    return RANDOM_INIT_LR if audio_encoder in TINY_PRESETS else PRETRAINED_LR


def describe_weights(spec: str, modality: Modality) -> str:
    """``random-init (tiny-wavlm)`` or ``pretrained (microsoft/wavlm-base-plus)``, for report headers."""
    ref = resolve_encoder(spec, modality)
    return f"random-init ({spec})" if ref.tiny is not None else f"pretrained ({ref.source})"
