"""From logits to the answer a user wants: a label and its probability per image (CLI and served model alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["answer_frame", "labels_of"]


def labels_of(logits: np.ndarray, classes: Sequence[str]) -> tuple[list[str | int], np.ndarray]:
    """Per row: the class name (``classes`` from the manifest) or, without one, the class index; and its softmax
    probability.

    Example:
        >>> labels_of(np.array([[0.0, 2.0]], np.float32), ["cat", "dog"])[0]
        ['dog']
    """
    if len(logits) == 0:
        return [], np.zeros(0, dtype=np.float64)
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    labels: list[str | int] = [str(classes[b]) if b < len(classes) else int(b) for b in best]
    return labels, probs[np.arange(len(best)), best]


def answer_frame(logits: np.ndarray, classes: Sequence[str], *, return_logits: bool = False) -> Any:
    """A pandas DataFrame with one row per image: ``label``, ``probability`` (and ``logits`` if asked)."""
    import pandas as pd

    labels, probs = labels_of(logits, classes)
    columns: dict[str, Any] = {"label": pd.Series(labels, dtype=object), "probability": probs.astype(np.float64)}
    if return_logits:
        columns["logits"] = pd.Series([row.tolist() for row in logits], dtype=object)
    return pd.DataFrame(columns)
