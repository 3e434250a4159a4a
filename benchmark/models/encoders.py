"""Load audio and text encoders from a preset, a hub id or a local directory, through ``transformers``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    AutoFeatureExtractor,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaModel,
    Wav2Vec2FeatureExtractor,
)

from benchmark.data.records import SAMPLE_RATE
from benchmark.models.presets import HUB_PRESETS, EncoderRef, HubPreset, hub_config, resolve_encoder
from benchmark.models.tokenizer import tiny_tokenizer


class EncoderLoadError(RuntimeError):
    """A checkpoint that could not be loaded; the message names it and says how to make it available."""


@dataclass
class AudioEncoder:
    """A speech encoder with the feature extractor that prepares its input."""

    ref: EncoderRef
    model: PreTrainedModel
    feature_extractor: Wav2Vec2FeatureExtractor

    @property
    def uses_attention_mask(self) -> bool:
        # transformers' rule: checkpoints whose feature extractor does not return an attention mask
        # (group-norm conv stacks such as wav2vec2-base) take zero-padded input and no mask.
        return bool(self.feature_extractor.return_attention_mask)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


@dataclass
class TextEncoder:
    """A text encoder with its tokenizer."""

    ref: EncoderRef
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def load_audio_encoder(spec: str | EncoderRef, *, seed: int = 0, random_init: bool = False) -> AudioEncoder:
    """Load an audio encoder.

    Args:
        spec: preset name, hub id, local directory, or an already resolved :class:`EncoderRef`.
        seed: initialises a tiny preset's random weights (the global RNG is left as it was).
        random_init: build a hub preset's architecture with random weights from its shipped config instead of
            downloading the checkpoint (for throughput measurements; no pre-trained weights involved).
    """
    ref = spec if isinstance(spec, EncoderRef) else resolve_encoder(spec, "audio")
    if random_init and ref.tiny is None:
        preset = _hub_preset(ref)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModel.from_config(hub_config(preset.name))
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, **preset.extractor
        )
        return AudioEncoder(ref=ref, model=model, feature_extractor=extractor)
    if ref.tiny is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModel.from_config(ref.tiny.make_config())
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=SAMPLE_RATE,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=ref.tiny.return_attention_mask,
        )
        return AudioEncoder(ref=ref, model=model, feature_extractor=extractor)
    model = _from_pretrained(ref, AutoModel.from_pretrained)
    extractor = _from_pretrained(ref, AutoFeatureExtractor.from_pretrained)
    if getattr(extractor, "sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise EncoderLoadError(
            f"audio encoder {ref.spec!r} expects {extractor.sampling_rate} Hz input; the suite feeds 16 kHz"
        )
    return AudioEncoder(ref=ref, model=model, feature_extractor=extractor)


def load_text_encoder(spec: str | EncoderRef, *, seed: int = 0, random_init: bool = False) -> TextEncoder:
    """Load a text encoder and its tokenizer (see :func:`load_audio_encoder` for the arguments).

    With ``random_init`` a hub preset gets the offline tiny tokenizer: its ids fit any RoBERTa vocabulary and
    its prompts are within a token or two of the real tokenizer's, which is all a random-init model needs.
    """
    ref = spec if isinstance(spec, EncoderRef) else resolve_encoder(spec, "text")
    if random_init and ref.tiny is None:
        preset = _hub_preset(ref)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = RobertaModel(hub_config(preset.name), add_pooling_layer=False)
        return TextEncoder(ref=ref, model=model, tokenizer=tiny_tokenizer())
    if ref.tiny is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = RobertaModel(ref.tiny.make_config(), add_pooling_layer=False)
        return TextEncoder(ref=ref, model=model, tokenizer=tiny_tokenizer())
    model = _from_pretrained(ref, AutoModel.from_pretrained)
    tokenizer = _from_pretrained(ref, AutoTokenizer.from_pretrained)
    return TextEncoder(ref=ref, model=model, tokenizer=tokenizer)


def _hub_preset(ref: EncoderRef) -> HubPreset:
    if ref.spec not in HUB_PRESETS:
        raise EncoderLoadError(
            f"{ref.modality} encoder {ref.spec!r}: random-init weights need a preset whose architecture ships "
            f"with the suite ({', '.join(n for n, p in HUB_PRESETS.items() if p.modality == ref.modality)})"
        )
    return HUB_PRESETS[ref.spec]


def _from_pretrained(ref: EncoderRef, loader):
    try:
        return loader(ref.source)
    except (OSError, ValueError) as exc:
        raise EncoderLoadError(
            f"could not load {ref.modality} encoder {ref.spec!r} from {ref.source!r}: {exc}\n"
            "Without network access, download it once where there is (`hf download "
            f"{ref.source}`) and point HF_HOME at that cache, or pass a local directory written by "
            "save_pretrained; the tiny-* presets need no download."
        ) from exc
