"""Classification metrics from a confusion matrix.
"""

from __future__ import annotations

import numpy as np


def classification_metrics(confusion: np.ndarray) -> tuple[float, float, float]:
    """Accuracy, balanced accuracy (mean recall over present classes) and macro-F1."""
    total = confusion.sum()
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    acc = float(tp.sum() / total) if total else 0.0
    return acc, float(recall[present].mean()), float(f1[present].mean())
