import math

import pytest
import torch

from benchmark.losses import clap_loss, soft_targets
from benchmark.models.clap import ClapConfig, ClapModel, pair_logits, receptive_field
from benchmark.models.encoders import load_audio_encoder, load_text_encoder


def make_model(audio="tiny-wavlm", **cfg):
    torch.manual_seed(0)
    return ClapModel(
        load_audio_encoder(audio, seed=0), load_text_encoder("tiny-roberta", seed=1), ClapConfig(proj_dim=32, **cfg)
    )


def batch(n=6, seconds=(1.0, 0.6, 0.8, 1.0, 0.5, 0.9)):
    g = torch.Generator().manual_seed(0)
    lengths = [int(s * 16000) for s in seconds[:n]]
    x = torch.zeros(n, max(lengths))
    mask = torch.zeros(n, max(lengths), dtype=torch.long)
    for i, n_i in enumerate(lengths):
        x[i, :n_i] = torch.randn(n_i, generator=g)
        mask[i, :n_i] = 1
    return x, mask


def test_k_prompts_gathered_equal_n_prompts_loss_and_gradients():
    model = make_model()
    model.eval()  # no SpecAugment, so both passes see the same audio features
    x, mask = batch()
    emotion = torch.tensor([0, 1, 0, 3, 2, 1])
    gender = torch.tensor([0, 1, 1, 0, 1, 0])
    targets = soft_targets(emotion, gender, 0.8)

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    # Fast path: K distinct prompts, encoded once and gathered.
    out = model(x, mask)
    fast_loss = clap_loss(pair_logits(out.audio_emb, out.class_emb, emotion, out.logit_scale), targets)
    fast = grads(fast_loss)

    # Plain path: one prompt per sample, N text-encoder rows.
    audio = model.embed_audio(model.pooled_audio(x, mask))
    text = model.embed_text(model.class_ids[emotion], model.class_mask[emotion])
    slow_loss = clap_loss(model.logit_scale() * audio @ text.T, targets)
    slow = grads(slow_loss)

    torch.testing.assert_close(fast_loss, slow_loss, rtol=1e-6, atol=1e-7)
    assert fast.keys() == slow.keys() and any(k.startswith("text_encoder") for k in fast)
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("audio", ["tiny-wavlm", "tiny-hubert", "tiny-wav2vec2", "tiny-data2vec"])
def test_pooling_averages_only_real_frames(audio):
    model = make_model(audio)
    model.eval()
    x, mask = batch(2, (1.0, 0.5))
    with torch.no_grad():
        # The encoder sees the mask only when its checkpoint family was trained with one.
        kwargs = {"attention_mask": mask} if model.uses_attention_mask else {}
        frames = model.audio_encoder(x, **kwargs).last_hidden_state
        n_real = int(model.audio_encoder._get_feat_extract_output_lengths(torch.tensor(8000)))
        pooled = model.pooled_audio(x, mask)
    assert n_real < frames.shape[1]
    torch.testing.assert_close(pooled[0], frames[0].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pooled[1], frames[1, :n_real].mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("audio", ["tiny-wavlm", "tiny-hubert", "tiny-wav2vec2", "tiny-data2vec"])
def test_a_clip_shorter_than_the_receptive_field_is_padded_to_one_frame(audio):
    model = make_model(audio)
    model.eval()
    assert receptive_field(model.audio_encoder.config) == 400  # 25 ms at 16 kHz, as in the hub checkpoints
    clip = torch.randn(1, 160, generator=torch.Generator().manual_seed(1))  # 10 ms: no frame of its own
    with torch.no_grad():
        alone = model.pooled_audio(clip, torch.ones(1, 160, dtype=torch.long))
        # the reference: the clip zero-padded to 400 samples, all of them real, gives exactly one frame
        padded = torch.cat([clip, torch.zeros(1, 240)], dim=1)
        kwargs = {"attention_mask": torch.ones(1, 400, dtype=torch.long)} if model.uses_attention_mask else {}
        (frame,) = model.audio_encoder(padded, **kwargs).last_hidden_state[0]
        torch.testing.assert_close(alone[0], frame, rtol=1e-5, atol=1e-6)

        # in a batch beside a 1 s clip it still pools real frames, and the long clip is untouched
        x, mask = batch(2, (1.0, 0.01))
        x[1, :160] = clip[0]
        pooled = model.pooled_audio(x, mask)
        assert torch.isfinite(pooled).all() and pooled[1].norm() > 0
        seen = mask.clone()
        seen[1, :400] = 1  # what the encoder is shown: the short clip's 400 samples count as real
        kwargs = {"attention_mask": seen} if model.uses_attention_mask else {}
        frames = model.audio_encoder(x, **kwargs).last_hidden_state
        torch.testing.assert_close(pooled[0], frames[0].mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pooled[1], frames[1, 0], rtol=1e-5, atol=1e-6)  # its one frame


def test_logit_scale_learnable_clamped_or_fixed():
    learn = make_model()
    assert learn.log_logit_scale.requires_grad
    assert float(learn.logit_scale().detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        learn.log_logit_scale.fill_(math.log(1000.0))
    assert float(learn.logit_scale().detach()) == pytest.approx(100.0)
    fixed = make_model(temperature=0.2, learnable_temperature=False)
    assert not fixed.log_logit_scale.requires_grad
    assert float(fixed.logit_scale().detach()) == pytest.approx(5.0, rel=1e-5)


def test_prompts_come_from_the_template():
    cfg = ClapConfig(prompt_template="Speech that sounds {label}.")
    assert cfg.class_prompts() == [f"Speech that sounds {w}." for w in ("neutral", "happy", "angry", "sad")]
    assert ClapConfig().gender_prompts() == ["The gender is female.", "The gender is male."]
    with pytest.raises(ValueError, match="prompt_template"):
        ClapConfig(prompt_template="no placeholder")
    with pytest.raises(ValueError, match="temperature"):
        ClapConfig(temperature=0.001)


def test_gender_head_only_when_asked():
    assert make_model().gender_head is None
    model = make_model(gender_head=True)
    x, mask = batch(3)
    out = model(x, mask)
    assert out.gender_logits.shape == (3, 2)
    assert model(x, mask, gender_prompts=True).gender_emb.shape == (2, 32)


def test_predict_is_argmax_cosine_against_class_prompts():
    model = make_model()
    model.eval()
    x, mask = batch()
    with torch.no_grad():
        class_emb = model.class_embeddings()
        audio = model.embed_audio(model.pooled_audio(x, mask))
        want = torch.nn.functional.cosine_similarity(audio[:, None], class_emb[None], dim=-1).argmax(-1)
        assert torch.equal(model.predict(x, mask, class_emb), want)
