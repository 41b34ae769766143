"""Which trials get ground truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def select_for_ground_truth(scores: pd.Series, k: int, top: int = 3) -> list[int]:
    """``top`` best by score plus ``k − top`` spread over the rest by quantile (deterministic).

    ``scores`` is indexed by trial number. The spread lets the fit see bad and mediocre models,
    the top few are what the user will export.
    """
    scores = scores.dropna().sort_values(ascending=False)
    if k >= len(scores):
        return [int(i) for i in scores.index]
    chosen = [int(i) for i in scores.index[:top]]
    rest = scores.iloc[top:]
    for bin_ in np.array_split(np.arange(len(rest)), k - len(chosen)):
        if len(bin_):
            chosen.append(int(rest.index[bin_[len(bin_) // 2]]))  # the bin's median trial
    return chosen
