import pytest
import torch

from benchmark.models.encoders import EncoderLoadError, load_audio_encoder, load_text_encoder
from benchmark.models.presets import HUB_PRESETS, TINY_PRESETS, UnknownEncoderError, resolve_encoder


@pytest.mark.parametrize("name", ["wavlm-base-plus", "hubert-large", "wav2vec2-base", "data2vec-large"])
def test_hub_presets_resolve_to_hub_ids(name):
    ref = resolve_encoder(name, "audio")
    assert ref.source == HUB_PRESETS[name].hub_id and ref.pretrained


def test_every_paper_family_has_base_and_large_presets():
    for family in ("wavlm", "hubert", "wav2vec2", "data2vec"):
        names = [n for n in HUB_PRESETS if n.startswith(family)]
        assert len(names) == 2, names
    assert resolve_encoder("roberta-base", "text").source == "FacebookAI/roberta-base"


def test_hub_id_and_unknown_names():
    assert resolve_encoder("someone/my-wavlm", "audio").source == "someone/my-wavlm"
    with pytest.raises(UnknownEncoderError, match="unknown audio encoder 'wavlm-huge'"):
        resolve_encoder("wavlm-huge", "audio")
    with pytest.raises(UnknownEncoderError, match="a text encoder is needed"):
        resolve_encoder("tiny-wavlm", "text")
    with pytest.raises(UnknownEncoderError, match="unknown audio encoder"):
        resolve_encoder("no/such/dir", "audio")


def test_hub_checkpoint_offline_gives_a_clear_error():
    # The real from_pretrained path runs up to the hub boundary (offline mode is set in conftest).
    with pytest.raises(EncoderLoadError, match=r"'wavlm-base-plus' from 'microsoft/wavlm-base-plus'"):
        load_audio_encoder("wavlm-base-plus")


@pytest.mark.parametrize("name", [n for n, p in TINY_PRESETS.items() if p.modality == "audio"])
def test_tiny_audio_presets_run_and_are_seeded(name):
    a = load_audio_encoder(name, seed=3)
    b = load_audio_encoder(name, seed=3)
    c = load_audio_encoder(name, seed=4)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    a.model.eval()
    out = a.model(torch.randn(2, 16000)).last_hidden_state
    assert out.shape == (2, 49, a.hidden_size)


def test_group_norm_families_take_no_attention_mask():
    assert not load_audio_encoder("tiny-wav2vec2").uses_attention_mask
    assert not load_audio_encoder("tiny-hubert").uses_attention_mask
    assert load_audio_encoder("tiny-wavlm").uses_attention_mask


def test_local_directory_round_trip(tmp_path):
    audio = load_audio_encoder("tiny-wavlm", seed=1)
    audio.model.save_pretrained(tmp_path / "audio")
    audio.feature_extractor.save_pretrained(tmp_path / "audio")
    text = load_text_encoder("tiny-roberta", seed=1)
    text.model.save_pretrained(tmp_path / "text")
    text.tokenizer.save_pretrained(tmp_path / "text")

    audio2 = load_audio_encoder(str(tmp_path / "audio"))
    text2 = load_text_encoder(str(tmp_path / "text"))
    assert audio2.ref.pretrained and audio2.uses_attention_mask == audio.uses_attention_mask
    x = torch.randn(1, 8000)
    audio.model.eval(), audio2.model.eval()
    torch.testing.assert_close(audio.model(x).last_hidden_state, audio2.model(x).last_hidden_state)
    ids = text.tokenizer(["The emotion is sad."], return_tensors="pt")
    assert (
        text2.tokenizer(["The emotion is sad."], return_tensors="pt")["input_ids"].tolist() == ids["input_ids"].tolist()
    )
    text.model.eval(), text2.model.eval()
    torch.testing.assert_close(text.model(**ids).last_hidden_state, text2.model(**ids).last_hidden_state)


def test_local_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(UnknownEncoderError, match=r"no config\.json"):
        resolve_encoder(str(tmp_path), "audio")


# Published sizes (millions of parameters): wav2vec 2.0 / HuBERT / WavLM papers give 95 M for base and 317 M for
# large models (data2vec-audio: same transformer, smaller positional convs), RoBERTa-base 125 M. The encoders here
# have no pre-training heads (quantiser, target projections), which accounts for the last percent.
@pytest.mark.parametrize(
    ("name", "millions"),
    [
        ("wavlm-base-plus", 95),
        ("wavlm-large", 317),
        ("hubert-base", 95),
        ("hubert-large", 317),
        ("wav2vec2-base", 95),
        ("wav2vec2-large", 317),
        ("data2vec-base", 94),
        ("data2vec-large", 314),
    ],
)
def test_random_init_hub_presets_have_the_checkpoints_shapes(name, millions):
    with torch.device("meta"):  # shapes only: nothing is allocated or downloaded
        audio = load_audio_encoder(name, random_init=True)
    size = sum(p.numel() for p in audio.model.parameters()) / 1e6
    assert size == pytest.approx(millions, rel=0.015)
    assert audio.model.config.model_type == HUB_PRESETS[name].family.replace("data2vec", "data2vec-audio")
    # the mask rule of each family's feature extractor: group-norm base checkpoints take no attention mask
    assert audio.uses_attention_mask == (name not in ("wav2vec2-base", "hubert-base"))


def test_random_init_text_preset_and_unsupported_names():
    with torch.device("meta"):
        text = load_text_encoder("roberta-base", random_init=True)
    assert sum(p.numel() for p in text.model.parameters()) / 1e6 == pytest.approx(125, rel=0.015)
    ids = text.tokenizer(["The emotion is angry."])["input_ids"][0]
    assert ids[0] == 0 and ids[-1] == 2 and max(ids) < text.model.config.vocab_size
    with pytest.raises(EncoderLoadError, match="random-init weights need a preset"):
        load_audio_encoder("someone/my-wavlm", random_init=True)
