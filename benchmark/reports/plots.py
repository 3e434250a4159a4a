"""Matplotlib figures shared by run artifacts and reports (Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmark.data.records import CLASS_WORDS


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str, path: Path) -> Path:
    """A confusion matrix with counts and row-normalised shading, class names on both axes."""
    cm = np.asarray(matrix, dtype=float)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = [CLASS_WORDS.get(c, c) for c in classes]
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=110)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted emotion")
    ax.set_ylabel("true emotion")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
