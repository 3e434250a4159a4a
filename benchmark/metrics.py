"""WAR, UAR, confusion matrices and per-group breakdowns: pure functions of labels and predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score


def war(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Weighted average recall = overall accuracy."""
    return float(accuracy_score(y_true, y_pred))


def uar(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Unweighted average recall: mean of the per-class recalls over the classes present in ``y_true``."""
    present = np.unique(np.asarray(y_true))
    return float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts, rows = true class, columns = predicted class."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def per_class_recall(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> list[float | None]:
    """Recall of each class; None for a class with no true samples."""
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    return [float(cm[k, k] / support[k]) if support[k] else None for k in range(n_classes)]


def evaluate(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    groups: Sequence[str],
    classes: Sequence[str],
    group_names: Sequence[str] = ("F", "M"),
) -> dict:
    """All test metrics of one cell, JSON-ready.

    Args:
        y_true, y_pred: class indices into ``classes``.
        groups: the group (gender) of each utterance.
        classes: class codes, in index order.
        group_names: groups to break down by, in report order.

    Returns:
        ``{"war", "uar", "n", "confusion", "recall", "by_gender": {g: {"war", "uar", "n", "confusion",
        "recall"}}}`` where ``recall`` maps class code to recall (per gender: recall per emotion x gender).
    """
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    k = len(classes)
    out = _block(y_true, y_pred, classes, k)
    out["by_gender"] = {}
    for g in group_names:
        sel = groups == g
        if sel.any():
            out["by_gender"][g] = _block(y_true[sel], y_pred[sel], classes, k)
    return out


def headline(m: dict) -> dict:
    """``{"war", "uar", "by_gender": {g: {"war", "uar"}}}`` of an :func:`evaluate` result."""
    return {
        "war": m["war"],
        "uar": m["uar"],
        "by_gender": {g: {"war": b["war"], "uar": b["uar"]} for g, b in m["by_gender"].items()},
    }


def _block(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], k: int) -> dict:
    return {
        "war": war(y_true, y_pred),
        "uar": uar(y_true, y_pred),
        "n": len(y_true),
        "confusion": confusion(y_true, y_pred, k).tolist(),
        "recall": dict(zip(classes, per_class_recall(y_true, y_pred, k), strict=True)),
    }
