"""The boosted-trees learner of the composite: fitted by scikit-learn, saved as its own trees in JSON, evaluated here without scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from galaxy_common import spearman

TREE_PARAMS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 10,
               "l2_regularization": 1.0, "early_stopping": False}


FINITE_EXTREME = 1e300  # ±inf as finite extremes (order kept)


def finite_for_trees(values: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(values), np.sign(values) * FINITE_EXTREME, values)  # NaN stays NaN: the trees route it


def fit_trees(values: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    est = HistGradientBoostingRegressor(random_state=seed, **TREE_PARAMS).fit(finite_for_trees(values), y)
    fields = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")
    trees = []
    for (predictor,) in est._predictors:  # one regression tree per boosting iteration
        nodes = predictor.nodes
        trees.append({f: nodes[f].tolist() for f in fields})
    return {"baseline": float(np.ravel(est._baseline_prediction)[0]), "trees": trees, "params": TREE_PARAMS,
            "sklearn": __import__("sklearn").__version__}


def predict_trees(model: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """Sum of the boosted trees' leaf values (the same routing as scikit-learn: NaN by missing_go_to_left)."""
    x = finite_for_trees(values)
    out = np.full(len(x), model["baseline"], dtype=float)
    rows = np.arange(len(x))
    for tree in model["trees"]:
        value = np.asarray(tree["value"], dtype=float)
        feature = np.asarray(tree["feature_idx"], dtype=int)
        threshold = np.asarray(tree["num_threshold"], dtype=float)
        nan_left = np.asarray(tree["missing_go_to_left"], dtype=bool)
        left, right = np.asarray(tree["left"], dtype=int), np.asarray(tree["right"], dtype=int)
        leaf = np.asarray(tree["is_leaf"], dtype=bool)
        node = np.zeros(len(x), dtype=int)
        while True:
            active = ~leaf[node]
            if not active.any():
                break
            n = node[active]
            v = x[rows[active], feature[n]]
            go_left = np.where(np.isnan(v), nan_left[n], v <= threshold[n])
            node[active] = np.where(go_left, left[n], right[n])
        out += value[node]
    return out


def inner_cv_trees(values: np.ndarray, y: np.ndarray, folds: np.ndarray, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = finite_for_trees(values)
    if len(np.unique(folds)) > 5:  # leave-one-out folds: trees get 5 folds (cost), the comparison stays out-of-fold
        folds = np.random.default_rng(seed).permutation(len(y)) % 5
    pred = np.empty(len(y))
    for f in np.unique(folds):
        test = folds == f
        est = HistGradientBoostingRegressor(random_state=seed, **TREE_PARAMS).fit(x[~test], y[~test])
        pred[test] = est.predict(x[test])
    return spearman(pred, y)
