import random

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.data.batching import AudioBudgetSampler, Collator, LengthBucketSampler, UtteranceDataset, crop
from benchmark.data.records import CLASSES, Utterance
from benchmark.models.encoders import load_audio_encoder


def test_crop_random_in_training_centred_in_evaluation():
    wave = np.arange(100, dtype=np.float32)
    assert crop(wave, 200, None) is wave
    assert crop(wave, 40, None).tolist() == list(range(30, 70))
    windows = {int(crop(wave, 40, random.Random(s))[0]) for s in range(50)}
    assert len(windows) > 10 and min(windows) >= 0 and max(windows) <= 60


def test_sampler_covers_every_item_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.uniform(0.5, 10, size=503).tolist()
    sampler = LengthBucketSampler(lengths, 16, shuffle=True, seed=3, pool_batches=4)
    batches = list(sampler)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(503)) and len(batches) == len(sampler)
    # Bucketing: within-batch spread is far below the spread of a random batch.
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in batches if len(b) > 1])
    assert spread < 0.5 * np.ptp(lengths)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches  # ... and the same order for the same epoch


def test_evaluation_sampler_is_ordered_and_complete():
    lengths = [3.0, 1.0, 2.0, 5.0, 4.0]
    batches = list(LengthBucketSampler(lengths, 2, shuffle=False))
    assert batches == [[1, 2], [0, 4], [3]]


def test_budget_sampler_fills_batches_by_padded_seconds():
    rng = np.random.default_rng(1)
    lengths = np.minimum(rng.lognormal(1.28, 0.69, size=700), 10.0).tolist()
    sampler = AudioBudgetSampler(lengths, 60.0, 16, shuffle=True, seed=2)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(700)) and len(batches) == len(sampler)
    padded = [len(b) * max(lengths[i] for i in b) for b in batches]
    assert all(len(b) <= 16 and (p <= 60.0 or len(b) == 1) for b, p in zip(batches, padded, strict=True))
    # short utterances come in larger batches than long ones
    by_len = sorted(batches, key=lambda b: max(lengths[i] for i in b))
    assert len(by_len[0]) == 16 and len(by_len[-1]) == 6  # 60 s / 10 s
    # buckets keep padding low, and the leftovers of all buckets are packed into a few batches
    assert sum(lengths) / sum(padded) > 0.85
    assert sum(1 for b, p in zip(batches, padded, strict=True) if len(b) < 16 and p < 60.0 - 10.0 * 1.1) <= 2
    # a new order each epoch, the same for the same epoch, and always the same number of batches
    sampler.set_epoch(1)
    other = list(sampler)
    assert other != batches and len(other) == len(batches)
    assert [sorted(b) for b in other] != [sorted(b) for b in batches]  # new batch compositions, not just order
    sampler.set_epoch(0)
    assert list(sampler) == batches


def test_budget_sampler_edge_cases():
    # in evaluation order: each bucket's full batches by length, then the leftovers (here the 1 s item, whose
    # bucket could hold two)
    assert list(AudioBudgetSampler([5.0, 1.0, 2.0], 3.0, 8, shuffle=False)) == [[2], [0], [1]]
    assert list(AudioBudgetSampler([1.0] * 5, 100.0, 2, shuffle=False)) == [[0, 1], [2, 3], [4]]
    assert list(AudioBudgetSampler([], 10.0, 4, shuffle=True)) == []
    with pytest.raises(ValueError, match="budget_seconds must be positive"):
        AudioBudgetSampler([1.0], 0.0, 4, shuffle=True)


@pytest.fixture
def records(tmp_path):
    recs = []
    for i, seconds in enumerate([0.5, 1.5, 3.0]):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(int(seconds * 16000)) * 0.1, 16000, subtype="PCM_16")
        g = "FM"[i % 2]
        recs.append(
            Utterance(f"Ses01F_x_{g}00{i}", path, 1, "Ses01F_x", f"Ses01{g}", g, CLASSES[i], seconds, CLASSES[i])
        )
    return recs


def test_dataset_crops_reproducibly_and_collates_with_mask(records):
    ds = UtteranceDataset(records, CLASSES, max_seconds=1.0, train=True, seed=0)
    assert [len(ds[i]["wave"]) for i in range(3)] == [8000, 16000, 16000]
    first = ds[2]["wave"].copy()
    assert np.array_equal(ds[2]["wave"], first)
    ds.set_epoch(1)
    assert not np.array_equal(ds[2]["wave"], first)
    assert ds[1]["emotion"] == 1 and ds[1]["gender"] == 1
    for name in ("tiny-wavlm", "tiny-wav2vec2"):
        batch = Collator(load_audio_encoder(name).feature_extractor)([ds[0], ds[1]])
        assert batch.input_values.shape == (2, 16000)
        assert batch.sample_mask.sum(1).tolist() == [8000, 16000]
        assert torch.all(batch.input_values[0, 8000:] == 0)  # zero padding
        # do_normalize: each utterance zero-mean, unit-variance over its real samples
        real = batch.input_values[0, :8000]
        assert abs(float(real.mean())) < 1e-3 and abs(float(real.std()) - 1) < 1e-2
