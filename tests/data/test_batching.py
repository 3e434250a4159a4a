import random

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.data.batching import Collator, LengthBucketSampler, UtteranceDataset, crop
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
