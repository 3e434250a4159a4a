"""Frozen-encoder features: each utterance's pooled audio feature, computed once and cached on disk.

With ``train.freeze_encoders`` the audio encoder never changes, so its pooled output for an utterance is
a constant: a cell (or a search trial) then trains only the heads on these vectors, through the same
training steps as fine-tuning (``benchmark.train``; the loaders yield :class:`FeatureBatch`).

The cache is one safetensors file per key (tensors plus string metadata: no pickle, nothing executable
is loaded), under ``$GEMO_CACHE/features/``. Its name is a digest of everything the features depend on:

- the encoder: a digest of every weight tensor, its architecture config, its feature extractor settings;
- the data: the corpus fingerprint plus each audio file's size and modification time;
- the crop policy: a centred crop of ``max_seconds`` (the evaluation crop) and the batch size of the
  padded forward passes (zero padding changes the output of encoders that see no attention mask);
- the compute: device type, autocast dtype, torch and transformers versions, :data:`CACHE_VERSION`.

Change any of them and the digest changes, so the features are computed afresh into a new file. A file
whose stored key or ids differ from the request, or that cannot be read, is recomputed and replaced.
Concurrent workers compute a missing file once (a file lock); the file is written to a temporary name
and renamed into place, so a killed writer never leaves half a file.

Pooling uses no labels, so features of a fold's test session are computed with the others: that shows
the model nothing about the test labels, and the final evaluation reuses them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from benchmark.data.batching import Collator, LengthBucketSampler, UtteranceDataset
from benchmark.data.folds import Fold
from benchmark.data.records import CLASSES, GENDERS, Utterance
from benchmark.data.sources import fingerprint
from benchmark.data.synthetic import default_cache_dir

CACHE_VERSION = 1  # bump when the way features are computed changes
CROP_POLICY = "centre"


class FeatureCacheError(OSError):
    """The feature cache folder cannot be written; the message names it and the way out."""


@dataclass(frozen=True)
class PooledFeatures:
    """Pooled audio features of a corpus: row ``k`` belongs to utterance ``ids[k]``.

    Attributes:
        ids: utterance ids, sorted.
        features: ``[len(ids), hidden]`` float32 on the CPU.
        path: the cache file, or None when computed without one.
        hit: True when read from the cache, False when computed now.
    """

    ids: tuple[str, ...]
    features: torch.Tensor
    path: Path | None = None
    hit: bool = False

    def rows(self, records: Sequence[Utterance]) -> torch.Tensor:
        index = {uid: k for k, uid in enumerate(self.ids)}
        return self.features[[index[r.id] for r in records]]


@dataclass
class FeatureBatch:
    """A batch of pooled features: what :class:`~benchmark.data.batching.Batch` is to waveforms."""

    features: torch.Tensor  # [N, hidden]
    emotion: torch.Tensor  # [N] long
    gender: torch.Tensor  # [N] long
    index: torch.Tensor  # [N] long, positions in the dataset

    def to(self, device: torch.device | str) -> FeatureBatch:
        return FeatureBatch(*(t.to(device, non_blocking=True) for t in self._tensors()))

    def pin_memory(self) -> FeatureBatch:
        return FeatureBatch(*(t.pin_memory() for t in self._tensors()))

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {"pooled": self.features}

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.features, self.emotion, self.gender, self.index)


class FeatureDataset(Dataset):
    """Pooled features and labels of a list of utterances (no crops: the features are fixed)."""

    def __init__(self, records: Sequence[Utterance], features: torch.Tensor, classes: Sequence[str]) -> None:
        self.records = list(records)
        self.features = features
        self.class_index = {c: k for k, c in enumerate(classes)}

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes per epoch (the training loop calls it on every dataset)."""

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        return {
            "features": self.features[i],
            "emotion": self.class_index[r.emotion],
            "gender": GENDERS.index(r.gender),
            "index": i,
        }


def collate_features(items: list[dict]) -> FeatureBatch:
    return FeatureBatch(
        features=torch.stack([it["features"] for it in items]),
        emotion=torch.tensor([it["emotion"] for it in items], dtype=torch.long),
        gender=torch.tensor([it["gender"] for it in items], dtype=torch.long),
        index=torch.tensor([it["index"] for it in items], dtype=torch.long),
    )


def feature_loaders(
    fold: Fold, features: PooledFeatures, batch_size: int, seed: int, pin_memory: bool
) -> dict[str, DataLoader]:
    """Train (shuffled, seeded per epoch), val and test (ordered) loaders over the fold's pooled features."""
    loaders = {}
    for name, recs in (("train", fold.train), ("val", fold.val), ("test", fold.test)):
        train = name == "train"
        ds = FeatureDataset(recs, features.rows(recs), CLASSES)
        # equal lengths: the bucket sampler reduces to a seeded shuffle (train) or the given order
        sampler = LengthBucketSampler([1.0] * len(ds), batch_size, shuffle=train, seed=seed)
        loaders[name] = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_features, pin_memory=pin_memory)
    return loaders


# ---- computing and caching ------------------------------------------------------------------------------


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every tensor of ``module``'s state (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def files_digest(records: Sequence[Utterance]) -> str:
    """A digest of each audio file's size and modification time: a rewritten file changes it."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.id):
        st = r.path.stat()
        h.update(f"{r.id}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cache_key(
    model,
    collator: Collator,
    records: Sequence[Utterance],
    *,
    max_seconds: float,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
) -> dict:
    """Everything the pooled features depend on (see the module docstring)."""
    return {
        "version": CACHE_VERSION,
        "encoder": {
            "weights": weights_digest(model.audio_encoder),
            "config": hashlib.sha256(model.audio_encoder.config.to_json_string().encode()).hexdigest()[:32],
            "extractor": collator.feature_extractor.to_dict(),
            "attention_mask": bool(model.uses_attention_mask),
        },
        "data": {"fingerprint": fingerprint(records), "files": files_digest(records), "n": len(records)},
        "crop": {"policy": CROP_POLICY, "max_seconds": float(max_seconds), "batch_size": int(batch_size)},
        "compute": {
            "device": device.type,
            "dtype": str(dtype or torch.float32),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


@torch.no_grad()
def compute_features(
    model,
    collator: Collator,
    records: Sequence[Utterance],
    *,
    max_seconds: float,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    progress: bool = False,
) -> torch.Tensor:
    """Pooled audio features of ``records`` (in the given order) over centred crops, in eval mode."""
    ds = UtteranceDataset(records, CLASSES, max_seconds=max_seconds, train=False)
    sampler = LengthBucketSampler([ds.seconds(i) for i in range(len(ds))], batch_size, shuffle=False)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collator)
    was_training = model.training
    model.eval()
    out: torch.Tensor | None = None
    try:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            for batch in tqdm(loader, desc="pooled features", leave=False, disable=not progress, unit="batch"):
                batch = batch.to(device)
                pooled = model.pooled_audio(batch.input_values, batch.sample_mask).float().cpu()
                if out is None:
                    out = torch.empty(len(ds), pooled.shape[1], dtype=torch.float32)
                out[batch.index.cpu()] = pooled
    finally:
        model.train(was_training)
    assert out is not None, "no records to pool"
    return out


def pooled_features(
    model,
    collator: Collator,
    records: Sequence[Utterance],
    *,
    max_seconds: float,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> PooledFeatures:
    """The pooled features of ``records``, read from the cache or computed (and cached) now.

    Args:
        model: a :class:`~benchmark.models.clap.ClapModel` on ``device`` (its audio encoder is used).
        collator: the encoder's collator (its feature extractor normalises the waveforms).
        records: the corpus; features are stored in sorted id order.
        max_seconds: the centred crop.
        batch_size: utterances per padded forward pass.
        device, dtype: where and in which autocast dtype (None: fp32) to run the encoder.
        cache_dir: the cache root (``features/`` is created in it); None: ``$GEMO_CACHE``.
        progress: a progress bar while computing.

    Raises:
        FeatureCacheError: the cache folder cannot be written.
    """
    ordered = sorted(records, key=lambda r: r.id)
    ids = tuple(r.id for r in ordered)
    key = cache_key(
        model, collator, ordered, max_seconds=max_seconds, batch_size=batch_size, device=device, dtype=dtype
    )
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "features"
    path = folder / f"{key_digest(key)}.safetensors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = os.open(folder / f"{path.stem}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise FeatureCacheError(
            f"{folder}: the feature cache is not writable ({exc.strerror or exc}); set GEMO_CACHE to a "
            "writable folder, or train.feature_cache = false to run the frozen encoder on every batch"
        ) from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker computes, the others wait and read its file
        cached = _read(path, key, ids)
        if cached is not None:
            return PooledFeatures(ids, cached, path, hit=True)
        features = compute_features(
            model,
            collator,
            ordered,
            max_seconds=max_seconds,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            progress=progress,
        )
        _write(path, features, key, ids)
        return PooledFeatures(ids, features, path, hit=False)
    finally:
        os.close(lock)


def _read(path: Path, key: dict, ids: tuple[str, ...]) -> torch.Tensor | None:
    """The cached features if ``path`` holds exactly this key and these ids, else None."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if json.loads(meta.get("gemo.key", "null")) != json.loads(json.dumps(key, default=str)):
                return None
            if tuple(json.loads(meta.get("gemo.ids", "[]"))) != ids:
                return None
            features = f.get_tensor("features")
    except (SafetensorError, OSError, ValueError):
        return None  # unreadable or truncated: recomputed and replaced
    if features.ndim != 2 or features.shape[0] != len(ids) or not torch.isfinite(features).all():
        return None
    return features


def _write(path: Path, features: torch.Tensor, key: dict, ids: tuple[str, ...]) -> None:
    metadata = {"gemo.key": json.dumps(key, sort_keys=True, default=str), "gemo.ids": json.dumps(list(ids))}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({"features": features.contiguous()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
