"""Reproducible stratified splits and subsets (numpy only, seeded).

The test split is carved out first and never touched by trials: it is the ground truth for
full training (``correlation``) and for the exported models' cards.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FRACTIONS = (0.60, 0.15, 0.25)  # train, val, test


def stratified_split(labels: np.ndarray, seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Split indices per class into train/val/test; every class gets >= 1 in each split."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {fractions} must sum to 1")
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n = len(idx)
        n_test = max(1, int(round(fractions[2] * n)))
        n_val = max(1, int(round(fractions[1] * n)))
        if n - n_test - n_val < 1:
            raise ValueError(f"class {cls} has {n} samples: too few for three splits")
        out["test"].append(idx[:n_test])
        out["val"].append(idx[n_test : n_test + n_val])
        out["train"].append(idx[n_test + n_val :])
    return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


def stratified_subset(indices: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` of ``indices``, class proportions kept (largest remainder), >= 1 per class."""
    indices = np.asarray(indices)
    if n >= len(indices):
        return np.sort(indices)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels[indices], return_counts=True)
    exact = counts / counts.sum() * n
    take = np.maximum(1, np.floor(exact).astype(int))
    order = np.argsort(-(exact - np.floor(exact)))
    i = 0
    while take.sum() < n and i < len(order) * 2:
        k = order[i % len(order)]
        if take[k] < counts[k]:
            take[k] += 1
        i += 1
    chosen = [rng.permutation(indices[labels[indices] == c])[: t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))
