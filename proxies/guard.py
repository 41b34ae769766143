"""A model that has not learned never outranks one that has.

After a short trial on an imbalanced set (gz1: 70% ellipticals) many networks still predict the
majority class for everything: their validation accuracy (0.70) looks good, their balanced
accuracy sits at chance, and a calibrated proxy extrapolating from other signals can score them
high. :func:`is_collapsed` recognises them; :func:`guarded` moves their score below every score
of a model that learned, keeping their order among themselves.
"""

from __future__ import annotations

import math
from typing import Mapping

COLLAPSE_SHIFT = 10.0  # far below any accuracy-like score (they live in [0, 1], predictions within a few tenths of it)


def is_collapsed(metrics: Mapping[str, float], num_classes: int) -> bool:
    """Predicts a single class on the validation subset, or balanced accuracy at or below chance (1 / classes)."""
    predicted = metrics.get("val_predicted_classes")
    if predicted is not None and math.isfinite(predicted) and predicted <= 1:
        return True
    balanced = metrics.get("val_balanced_acc")
    return balanced is not None and math.isfinite(balanced) and balanced <= 1.0 / num_classes + 1e-9


def guarded(score: float, collapsed: bool) -> float:
    """The score a ranking uses: collapsed models shifted below every learned one."""
    return score - COLLAPSE_SHIFT if collapsed else score
