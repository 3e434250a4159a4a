"""Datasets, cropping, length-bucketed batches and collation into encoder inputs."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import Wav2Vec2FeatureExtractor

from benchmark.data.audio import load_audio
from benchmark.data.records import GENDERS, SAMPLE_RATE, Utterance


def crop(wave: np.ndarray, max_samples: int, rng: random.Random | None) -> np.ndarray:
    """At most ``max_samples`` of ``wave``: a random window when ``rng`` is given, else the centre."""
    if len(wave) <= max_samples:
        return wave
    spare = len(wave) - max_samples
    start = rng.randrange(spare + 1) if rng is not None else spare // 2
    return wave[start : start + max_samples]


class UtteranceDataset(Dataset):
    """Waveforms and labels of a list of utterances.

    Training crops are random but reproducible: the window of item ``i`` in epoch ``e`` depends only on
    (seed, e, i), whatever the worker or the order. Evaluation crops are centred.
    """

    def __init__(
        self,
        records: Sequence[Utterance],
        classes: Sequence[str],
        *,
        max_seconds: float,
        train: bool,
        seed: int = 0,
        cache_audio: bool = True,
    ) -> None:
        self.records = list(records)
        self.class_index = {c: k for k, c in enumerate(classes)}
        self.max_samples = round(max_seconds * SAMPLE_RATE)
        self.train = train
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, np.ndarray] | None = {} if cache_audio else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def seconds(self, i: int) -> float:
        """Length in seconds of item ``i`` after cropping, known without reading the audio."""
        return min(self.records[i].duration, self.max_samples / SAMPLE_RATE)

    def preload(self) -> None:
        """Read every file into the cache now (before DataLoader workers fork, so that they share it)."""
        if self._cache is not None:
            for i in range(len(self)):
                self._wave(i)

    def _wave(self, i: int) -> np.ndarray:
        if self._cache is None:
            return load_audio(self.records[i].path)
        if i not in self._cache:
            self._cache[i] = load_audio(self.records[i].path)
        return self._cache[i]

    def __getitem__(self, i: int) -> dict:
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}") if self.train else None
        r = self.records[i]
        return {
            "wave": crop(self._wave(i), self.max_samples, rng),
            "emotion": self.class_index[r.emotion],
            "gender": GENDERS.index(r.gender),
            "index": i,
        }


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length items, so little of each batch is padding.

    Each epoch: shuffle, cut into pools of ``pool_batches`` batches, sort each pool by length, cut the
    pool into batches, shuffle the batch order. Deterministic given (seed, epoch).
    """

    def __init__(
        self,
        lengths: Sequence[float],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        pool_batches: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool = batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(f"{self.seed}:{self.epoch}")
        if self.shuffle:
            rng.shuffle(order)
        else:
            order.sort(key=lambda i: self.lengths[i])
        batches = []
        for start in range(0, len(order), self.pool):
            pool = sorted(order[start : start + self.pool], key=lambda i: self.lengths[i])
            batches += [pool[k : k + self.batch_size] for k in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) if self.lengths else 0


class AudioBudgetSampler(Sampler[list[int]]):
    """Batches by a budget of padded audio seconds over length buckets, instead of a fixed count.

    Items fall into geometric length buckets (each upper edge ``ratio`` times the next lower one, so padding
    stays under ``ratio - 1`` of a batch). A batch holds as many items as fit in ``budget_seconds`` when each
    counts as long as its bucket's upper edge, at most ``max_count``, at least one: short utterances come in
    large batches and long ones in small batches, with about the same audio (so work and memory) per step.
    Each bucket is cut into full batches; the items left over from all buckets are then packed together in
    length order, so that there are only a few partial batches per epoch, not one per bucket.

    Each epoch shuffles the items within each bucket and the order of the batches (deterministic given seed and
    epoch). How many items of each bucket are left over does not depend on the shuffle, so the number of
    batches is the same every epoch, which the learning-rate schedule relies on. Without ``shuffle`` the order
    is fixed: the buckets' full batches in ascending length, then the packed leftovers.
    """

    def __init__(
        self,
        lengths: Sequence[float],
        budget_seconds: float,
        max_count: int,
        *,
        shuffle: bool,
        seed: int = 0,
        ratio: float = 1.1,
    ) -> None:
        if not budget_seconds > 0:
            raise ValueError(f"budget_seconds must be positive, got {budget_seconds}")
        if max_count < 1:
            raise ValueError(f"max_count must be positive, got {max_count}")
        if not ratio > 1.0:
            raise ValueError(f"ratio must be > 1, got {ratio}")
        self.lengths = list(lengths)
        self.budget = budget_seconds
        self.max_count = max_count
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.edges = bucket_edges(self.lengths, ratio)
        self.buckets: list[list[int]] = [[] for _ in self.edges]
        for i, length in enumerate(self.lengths):
            self.buckets[bisect.bisect_left(self.edges, length)].append(i)
        self._len = len(self._batches())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def fits(self, count: int, edge: float) -> bool:
        """Whether ``count`` items padded to ``edge`` seconds make a batch (a single item always does)."""
        return count == 1 or (count <= self.max_count and count * edge <= self.budget)

    def _batches(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        batches: list[list[int]] = []
        leftovers: list[tuple[float, int]] = []  # (bucket edge, item), in ascending bucket order
        for edge, items in zip(self.edges, self.buckets, strict=True):
            items = list(items)
            if self.shuffle:
                rng.shuffle(items)
            else:
                items.sort(key=lambda i: (self.lengths[i], i))
            size = max(1, min(self.max_count, int(self.budget // edge)))
            full = len(items) // size * size
            batches += [items[k : k + size] for k in range(0, full, size)]
            leftovers += [(edge, i) for i in items[full:]]
        current: list[int] = []
        for edge, i in leftovers:
            if current and not self.fits(len(current) + 1, edge):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return self._len


def bucket_edges(lengths: Sequence[float], ratio: float) -> list[float]:
    """Ascending upper edges of geometric buckets covering ``lengths``: the longest item, then /ratio, ..."""
    top = max(lengths, default=0.0)
    if top <= 0:
        return [1.0]
    low = max(min(lengths), top / 1000)  # anything shorter shares the lowest bucket
    edges = [top]
    while edges[-1] / ratio >= low:
        edges.append(edges[-1] / ratio)
    return edges[::-1]


@dataclass
class Batch:
    input_values: torch.Tensor  # [N, T] float, zero-padded
    sample_mask: torch.Tensor  # [N, T] long, 1 on real samples
    emotion: torch.Tensor  # [N] long
    gender: torch.Tensor  # [N] long
    index: torch.Tensor  # [N] long, positions in the dataset

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            *(
                t.to(device, non_blocking=True)
                for t in (self.input_values, self.sample_mask, self.emotion, self.gender, self.index)
            )
        )

    def pin_memory(self) -> Batch:
        return Batch(
            *(t.pin_memory() for t in (self.input_values, self.sample_mask, self.emotion, self.gender, self.index))
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The audio inputs of ``ClapModel`` (a feature batch gives ``pooled`` instead)."""
        return {"input_values": self.input_values, "sample_mask": self.sample_mask}


class Collator:
    """Pads a list of items through the checkpoint's own feature extractor (normalisation as it was trained).

    The sample mask is always returned (pooling needs it); whether the encoder *sees* it is the model's
    choice (see ``AudioEncoder.uses_attention_mask``).
    """

    def __init__(self, feature_extractor: Wav2Vec2FeatureExtractor) -> None:
        self.feature_extractor = feature_extractor

    def __call__(self, items: list[dict]) -> Batch:
        features = self.feature_extractor(
            [it["wave"] for it in items],
            sampling_rate=SAMPLE_RATE,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return Batch(
            input_values=features["input_values"],
            sample_mask=features["attention_mask"].long(),
            emotion=torch.tensor([it["emotion"] for it in items], dtype=torch.long),
            gender=torch.tensor([it["gender"] for it in items], dtype=torch.long),
            index=torch.tensor([it["index"] for it in items], dtype=torch.long),
        )
