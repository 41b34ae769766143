"""Rank statistics, the one place for them: Spearman, Kendall, top-k recall, bootstrap intervals.

The proxy's fit (its inner cross-validation and feature choice) and every report (``correlate``, the
benchmarks) rank with these same functions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats


def column_ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks down each column (ties share their mean rank)."""
    return stats.rankdata(a, axis=0)


def spearman_columns(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of every column of ``z`` with ``y`` at once (0 for a constant column)."""
    rz, ry = column_ranks(z), stats.rankdata(y)
    rz = rz - rz.mean(axis=0)
    ry = ry - ry.mean()
    denom = np.sqrt((rz**2).sum(axis=0) * (ry**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rz * ry[:, None]).sum(axis=0) / denom
    return np.nan_to_num(rho, nan=0.0)


BOOTSTRAP_RESAMPLES = 1000


def _finite_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def _rowwise_spearman(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row of ``p`` [..., n] with ``y`` [..., n] (NaN where a side is constant)."""
    rp = stats.rankdata(p, axis=-1)
    ry = stats.rankdata(y, axis=-1)
    rp = rp - rp.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rp * ry).sum(axis=-1) / np.sqrt((rp**2).sum(axis=-1) * (ry**2).sum(axis=-1))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ over the finite pairs; NaN with fewer than 3, or where a side is constant."""
    a, b = _finite_pairs(a, b)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(_rowwise_spearman(a, b))


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _finite_pairs(a, b)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.kendalltau(a, b).statistic)


def top_k_recall(pred: np.ndarray, target: np.ndarray, k: int = 3) -> float:
    """How many of the truly best ``k`` rows are among the predicted best ``k`` (fraction)."""
    pred = np.where(np.isfinite(pred), pred, -np.inf)
    return len(set(np.argsort(-pred, kind="stable")[:k]) & set(np.argsort(-target, kind="stable")[:k])) / k


def mean_spearman_ci(preds: np.ndarray, target: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> list[float]:
    """95% percentile interval of mean-over-repeats Spearman ρ, rows resampled together (``preds`` [R, n])."""
    preds = np.atleast_2d(np.asarray(preds, dtype=float))
    ok = np.isfinite(target) & np.isfinite(preds).all(axis=0)
    preds, target = preds[:, ok], np.asarray(target, dtype=float)[ok]
    n = len(target)
    if n < 4 or np.ptp(target) == 0:
        return [float("nan"), float("nan")]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    rho = _rowwise_spearman(preds[:, idx].transpose(1, 0, 2), target[idx][:, None, :])  # [B, R]
    stat = np.array([nanmean(r) for r in rho])
    stat = stat[np.isfinite(stat)]  # resamples where every row ties on one side have no ρ
    if stat.size < n_resamples // 2:
        return [float("nan"), float("nan")]
    return [float(np.percentile(stat, 2.5)), float(np.percentile(stat, 97.5))]


def bootstrap_ci(pred: np.ndarray, target: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float]:
    """95% percentile interval of Spearman ρ between two vectors, rows resampled."""
    return mean_spearman_ci(np.asarray(pred, dtype=float)[None, :], np.asarray(target, dtype=float), n_resamples, seed)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> list[float]:
    """95% percentile interval of ``statistic(positions)`` over resamples of ``n`` rows drawn with replacement."""
    if n < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_resamples)], dtype=float)
    values = values[np.isfinite(values)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values.size else [float("nan")] * 2


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> dict[str, float | list[float]]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same test galaxies, with a 95% bootstrap interval that
    resamples galaxies (both models' answers on a galaxy travel together: paired, so the interval is far narrower
    than either model's binomial SE where the two mostly agree)."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.shape} and {b.shape} are not the same galaxies")
    diff = a - b
    n = len(diff)
    if n < 2:
        return {"difference": float(diff.mean()) if n else float("nan"), "ci95": [float("nan")] * 2, "n": n}
    means = diff[np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))].mean(axis=1)
    return {"difference": float(diff.mean()), "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            "n": n, "only_a_right": int(((a == 1) & (b == 0)).sum()), "only_b_right": int(((a == 0) & (b == 1)).sum())}


def nanmean(values) -> float:
    """Mean of the finite values; NaN (quietly) when there are none."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def within_fold_ranks(values: np.ndarray) -> np.ndarray:
    """Scores of one held-out fold as ranks in (0, 1): comparable with other folds' whatever their scale."""
    values = np.where(np.isfinite(values), values, -np.inf)
    return (stats.rankdata(values) - 0.5) / len(values)
