"""Frozen encoders and the pooled-feature cache: real encoders, real WAVs, real safetensors files."""

import json
import multiprocessing as mp
import os
import shutil
import struct
from dataclasses import replace

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from benchmark.config import CellSpec, ClapConfig, TrainConfig
from benchmark.data.iemocap import read_iemocap
from benchmark.features import FeatureCacheError, FeatureDataset, compute_features, pooled_features
from benchmark.train import fit_cell, setup_model, train_cell

FROZEN = TrainConfig(epochs=2, batch_size=16, lr=3e-3, max_seconds=1.0, freeze_encoders="audio")
CPU = torch.device("cpu")


def spec(train=FROZEN, seed=0, fold=2):
    return CellSpec(
        "tiny-wavlm",
        "tiny-roberta",
        "sl-gemo-clap",
        fold=fold,
        alpha=0.8,
        seed=seed,
        model=ClapConfig(proj_dim=16),
        train=train,
    )


def features(records, cache_dir, cell=None, max_seconds=1.0):
    model, collator = setup_model(cell or spec())
    return pooled_features(
        model, collator, records, max_seconds=max_seconds, batch_size=16, device=CPU, dtype=None, cache_dir=cache_dir
    )


def test_second_request_reads_the_cache_and_equals_a_fresh_computation(small_records, tmp_path):
    first = features(small_records, tmp_path)
    second = features(small_records, tmp_path)
    assert not first.hit and second.hit and first.path == second.path
    assert torch.equal(first.features, second.features)
    assert second.ids == tuple(sorted(r.id for r in small_records))

    model, collator = setup_model(spec())
    ordered = sorted(small_records, key=lambda r: r.id)
    direct = compute_features(model, collator, ordered, max_seconds=1.0, batch_size=16, device=CPU, dtype=None)
    assert torch.equal(direct, second.features)
    # the pooled feature of one utterance, computed alone, matches its cached row (tiny-wavlm sees a mask)
    one = ordered[:1]
    alone = compute_features(model, collator, one, max_seconds=1.0, batch_size=1, device=CPU, dtype=None)
    assert torch.allclose(alone[0], second.features[0], atol=1e-4)


def test_the_file_is_safetensors_with_its_key_and_no_pickle(small_records, tmp_path):
    path = features(small_records, tmp_path).path
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert set(header) == {"features", "__metadata__"}
    assert header["features"]["dtype"] == "F32"
    assert header["features"]["shape"][0] == len(small_records)
    key = json.loads(header["__metadata__"]["gemo.key"])
    assert key["crop"] == {"policy": "centre", "max_seconds": 1.0, "batch_size": 16}
    assert len(key["encoder"]["weights"]) == 32 and key["data"]["n"] == len(small_records)
    assert b"\x80\x04" not in raw[: 8 + header_len]  # no pickle protocol marker in the header
    assert load_file(str(path))["features"].shape[0] == len(small_records)


def test_changed_inputs_give_a_new_cache_entry(small_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(small_corpus, corpus)
    records = read_iemocap(corpus)
    cache = tmp_path / "cache"
    base = features(records, cache)
    # other encoder weights (a random-init preset seeded differently), another crop, fewer utterances
    other_weights = features(records, cache, cell=spec(seed=1))
    other_crop = features(records, cache, max_seconds=0.5)
    subset = features(records[:-1], cache)
    paths = {base.path, other_weights.path, other_crop.path, subset.path}
    assert len(paths) == 4 and not any(f.hit for f in (other_weights, other_crop, subset))
    assert not torch.equal(base.features, other_weights.features)

    # an audio file rewritten in place (same name, same length): the cache must not serve the old features
    victim = sorted(records, key=lambda r: r.id)[0]
    wave, rate = sf.read(victim.path)
    sf.write(victim.path, wave[::-1].copy(), rate)
    os.utime(victim.path, ns=(victim.path.stat().st_atime_ns, victim.path.stat().st_mtime_ns + 10**9))
    rewritten = features(read_iemocap(corpus), cache)
    assert not rewritten.hit and rewritten.path != base.path
    assert not torch.equal(rewritten.features[0], base.features[0])
    assert torch.equal(rewritten.features[1:], base.features[1:])
    assert features(read_iemocap(corpus), cache).hit  # and the new entry serves the next request


def test_a_truncated_or_foreign_file_is_recomputed(small_records, tmp_path):
    good = features(small_records, tmp_path)
    want = good.features.clone()
    good.path.write_bytes(good.path.read_bytes()[:100])  # truncated: a killed writer on another system
    again = features(small_records, tmp_path)
    assert not again.hit and torch.equal(again.features, want)

    # a file under the right name but made for other inputs is not trusted either
    save_file(
        {"features": torch.zeros_like(want)},
        str(good.path),
        metadata={"gemo.key": json.dumps({"other": 1}), "gemo.ids": "[]"},
    )
    third = features(small_records, tmp_path)
    assert not third.hit and torch.equal(third.features, want)
    assert features(small_records, tmp_path).hit


def test_an_unwritable_cache_is_one_clear_error(small_records, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(FeatureCacheError, match=r"not-a-folder/features: the feature cache is not writable"):
        features(small_records, blocker)


def _compute_in_worker(records, cache, queue):
    torch.set_num_threads(1)
    got = features(records, cache)
    queue.put((got.hit, got.features.numpy().tobytes()))


def test_concurrent_workers_compute_a_missing_entry_once(small_records, tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_compute_in_worker, args=(small_records, tmp_path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(hit for hit, _ in results) == [False, True]  # one computed, the other waited and read
    assert results[0][1] == results[1][1]
    files = sorted(p.name for p in (tmp_path / "features").iterdir() if not p.name.endswith(".lock"))
    assert len(files) == 1 and files[0].endswith(".safetensors")  # no temporary left behind


def test_frozen_training_moves_only_the_unfrozen_parts(small_records, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMO_CACHE", str(tmp_path))
    for freeze in ("audio", "all"):
        cell = spec(train=replace(FROZEN, freeze_encoders=freeze))
        before, _ = setup_model(cell)
        fit = fit_cell(small_records, cell, progress=False)
        after = fit.model
        same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))  # noqa: E731
        assert same(before.audio_encoder, after.audio_encoder)
        assert same(before.text_encoder, after.text_encoder) == (freeze == "all")
        assert not same(before.audio_proj, after.audio_proj)
        assert not after.audio_encoder.training  # a frozen encoder stays in eval mode (no dropout)
        assert isinstance(fit.loaders["train"].dataset, FeatureDataset)  # the heads train on cached features


@pytest.mark.slow
def test_cached_and_uncached_frozen_cells_are_both_deterministic(small_records, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMO_CACHE", str(tmp_path))
    cached = spec()
    a = train_cell(small_records, cached, progress=False)
    b = train_cell(small_records, cached, progress=False)  # the second reads the cache
    assert a.test == b.test and [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 1
    uncached = spec(train=replace(FROZEN, feature_cache=False))
    c = train_cell(small_records, uncached, progress=False)
    d = train_cell(small_records, uncached, progress=False)
    assert c.test == d.test
    # random training crops through the frozen encoder instead of fixed centred features: other losses
    assert [h.train_loss for h in c.history] != [h.train_loss for h in a.history]
    assert {p["id"] for p in a.predictions} == {r.id for r in small_records if r.session == 2}
