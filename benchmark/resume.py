"""Epoch checkpoints: a cell's whole training state after each epoch, so that a killed cell resumes there.

With ``train.resumable`` the runner gives :func:`benchmark.train.fit_cell` a file beside the store
(``.gemo/resume/<experiment id>/<cell id>.pt``). After every epoch fit_cell writes the training state there:

- the model's weights, the optimiser's and the learning-rate scheduler's states;
- the best epoch's weights, its validation UAR and number, the history so far, and whether early stopping
  ended training;
- the random-number generators of Python, NumPy and torch (every CUDA device's too).

The file is written to a temporary file and renamed over the old one, so a process killed mid-write leaves
the previous epoch's state. The next ``gemo-bench run`` trains a killed cell again: fit_cell loads the state
and trains only the remaining epochs. Every epoch's crops and batch order come from (seed, epoch) alone, so
the resumed cell ends exactly where an uninterrupted one does; a test checks it bit for bit on CPU. The
runner deletes the file once the cell's run has ended FINISHED.

The state is about four times the model's size on disk: weights, AdamW's two moments, the best weights.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.config import CellSpec

FORMAT = 1


class ResumeError(ValueError):
    """A saved training state that cannot be used; the message names the file and what to do."""


@dataclass
class TrainingState:
    """Where training stood after ``epoch``: what :func:`benchmark.train.fit_cell` keeps between epochs."""

    epoch: int
    history: list[dict[str, float]]  # EpochStats as dicts
    best_uar: float
    best_epoch: int
    best_weights: dict[str, torch.Tensor] | None
    stopped: bool  # early stopping ended training at ``epoch``


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _identity(spec: CellSpec) -> str:
    return json.dumps(spec.identity(), sort_keys=True, default=str)


def save_state(
    path: Path,
    spec: CellSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainingState,
) -> None:
    """Write the training state after ``state.epoch`` to ``path`` atomically (the generators as they are now)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "cell": _identity(spec),
        "epoch": state.epoch,
        "history": state.history,
        "best_uar": state.best_uar,
        "best_epoch": state.best_epoch,
        "best_weights": state.best_weights,
        "stopped": state.stopped,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_state(
    path: Path,
    spec: CellSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> TrainingState | None:
    """Restore the model, optimiser, scheduler and generators from ``path``; None when there is no file.

    Raises:
        ResumeError: the file cannot be read, or was written for another cell or by another format.
    """
    if not path.is_file():
        return None
    delete = "delete it to train the cell from its first epoch"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: pickle, zip and torch errors alike
        raise ResumeError(f"{path}: cannot read the saved training state ({exc}); {delete}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ResumeError(f"{path}: not a training state of this version of gemo-bench; {delete}")
    if payload["cell"] != _identity(spec):
        raise ResumeError(f"{path}: the saved training state belongs to another cell; {delete}")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    _set_rng_state(payload["rng"])
    return TrainingState(
        epoch=int(payload["epoch"]),
        history=list(payload["history"]),
        best_uar=float(payload["best_uar"]),
        best_epoch=int(payload["best_epoch"]),
        best_weights=payload["best_weights"],
        stopped=bool(payload["stopped"]),
    )


def saved_epoch(path: Path) -> int | None:
    """The epoch after which ``path`` saved a training state; None without a readable one.

    The tensors are memory-mapped, not read: a look at a state of several GB costs milliseconds.
    """
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(payload["epoch"])
    except Exception:  # unreadable: the next run says so, naming the file
        return None
