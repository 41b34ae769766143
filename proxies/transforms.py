"""Per-metric monotone transforms of the composite (rank-gauss by default), fitted on the training rows; a missing value ranks below every finite one.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats

from proxies.trees import FINITE_EXTREME

N_QUANTILES = 101  # stored reference points of each rank-gauss transform


class FeatureTransform:
    """A per-metric monotone map learned from training rows (rank-gauss or z-score)."""

    def __init__(self, name: str, kind: str, mean: float = 0.0, std: float = 1.0, quantiles: Sequence[float] = ()) -> None:
        self.name, self.kind, self.mean, self.std, self.quantiles = name, kind, mean, std, list(quantiles)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "mean": self.mean, "std": self.std, "quantiles": self.quantiles}

    @classmethod
    def fit(cls, name: str, values: np.ndarray, kind: str) -> FeatureTransform:
        values = np.asarray(values, dtype=float)
        if kind == "z":
            finite = values[np.isfinite(values)]
            return cls(name, kind, float(finite.mean()), float(finite.std()) or 1.0)
        # ±inf keep their order as extremes; a missing value ranks below everything, -inf included.
        ordered = np.sort(floor_missing(values))
        q = np.quantile(ordered, np.linspace(0, 1, N_QUANTILES), method="linear")
        return cls(name, kind, quantiles=[float(v) for v in q])

    def transform(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if self.kind == "z":
            out = (values - self.mean) / self.std
            return np.where(np.isnan(out), 0.0, np.clip(out, -6, 6))
        q = np.asarray(self.quantiles)
        v = floor_missing(values)
        # Mid-rank of v among the reference quantiles (ties share a level), as a CDF in (0, 1).
        lo = np.searchsorted(q, v, side="left")
        hi = np.searchsorted(q, v, side="right")
        cdf = np.clip((lo + hi) / 2.0 / len(q), 0.5 / len(q), 1 - 0.5 / len(q))
        return stats.norm.ppf(cdf)


def floor_missing(values: np.ndarray) -> np.ndarray:
    """NaN → below every other value (even -inf); ±inf → finite extremes."""
    v = np.clip(np.where(np.isinf(values), np.sign(values) * FINITE_EXTREME, values), -FINITE_EXTREME, FINITE_EXTREME)
    return np.where(np.isnan(v), -1.1 * FINITE_EXTREME, v)  # below -inf's stand-in
