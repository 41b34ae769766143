"""Honest evaluation of a proxy: every number that involves fitting is out-of-sample.

Protocol (repeated K-fold): for each repeat the rows are shuffled into K folds; the composite is
fitted on K−1 folds and predicts the held-out fold, giving one out-of-fold prediction per row.
Rank statistics (scipy.stats) are computed between out-of-fold predictions and the target, then
averaged over repeats. With few rows (< 2K) the folds become leave-one-out.

Baselines go through the same folds: the *best single metric*, chosen (with its sign) on the
training folds only, and the seed composite (its published weights, z statistics from the
training folds). Single-metric ρ are reported as they are (nothing is fitted, so nothing leaks).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from proxies.composite import CompositeProxy, seed_calibration

SEED_COLUMNS = ("train_loss", "grad_norm_mean", "val_loss", "train_loss_cv", "gap")


def _finite_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ over the finite pairs; NaN with fewer than 3, or where a side is constant."""
    a, b = _finite_pairs(a, b)
    if len(a) < 3:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(a, b).statistic)


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _finite_pairs(a, b)
    if len(a) < 3:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.kendalltau(a, b).statistic)


def top_k_recall(pred: np.ndarray, target: np.ndarray, k: int = 3) -> float:
    """How many of the truly best ``k`` rows are among the predicted best ``k`` (fraction)."""
    pred = np.where(np.isfinite(pred), pred, -np.inf)
    return len(set(np.argsort(-pred)[:k]) & set(np.argsort(-target)[:k])) / k


def bootstrap_ci(pred: np.ndarray, target: np.ndarray, statistic: Callable = spearman, n_resamples: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile interval of a paired statistic, rows resampled with scipy.stats.bootstrap."""
    ok = np.isfinite(pred) & np.isfinite(target)
    if ok.sum() < 4 or np.ptp(pred[ok]) == 0 or np.ptp(target[ok]) == 0:
        return [float("nan"), float("nan")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (a constant side) give NaN statistics
        res = stats.bootstrap((pred[ok], target[ok]), lambda a, b: statistic(a, b), paired=True, vectorized=False,
                              n_resamples=n_resamples, method="percentile", random_state=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), k)


@dataclass
class CrossValidation:
    """Out-of-fold predictions of the composite and the baselines, per repeat."""

    target: np.ndarray
    composite: list[np.ndarray] = field(default_factory=list)
    best_single: list[np.ndarray] = field(default_factory=list)
    seed: list[np.ndarray] = field(default_factory=list)
    composite_fold_rho: list[float] = field(default_factory=list)
    best_single_fold_rho: list[float] = field(default_factory=list)
    chosen_single: dict[str, int] = field(default_factory=dict)

    def summary(self, preds: list[np.ndarray]) -> dict[str, float]:
        if not preds:
            return {}
        return {
            "spearman": float(np.mean([spearman(p, self.target) for p in preds])),
            "kendall": float(np.mean([kendall(p, self.target) for p in preds])),
            "top3_recall": float(np.mean([top_k_recall(p, self.target) for p in preds])),
            "spearman_ci95": bootstrap_ci(np.mean(preds, axis=0), self.target),
        }


def cross_validate(table: pd.DataFrame, target: str, features: Sequence[str], folds: int = 5, repeats: int = 10,
                   seed: int = 0, make_proxy: Callable[[], CompositeProxy] | None = None,
                   progress: bool = False) -> CrossValidation:
    """Out-of-fold predictions of the composite and the baselines over ``repeats`` × ``folds`` fits.

    ``progress`` shows a bar over the fits: each one runs the composite's inner selection, which
    takes minutes in all for a couple of dozen rows on a small CPU.
    """
    make_proxy = make_proxy or (lambda: CompositeProxy(features=features))
    table = table.reset_index(drop=True)
    y = table[target].to_numpy(dtype=float)
    n = len(table)
    k = min(folds, n)
    if n < 2 * folds:
        k, repeats = n, 1  # leave-one-out: shuffling changes nothing
    rng = np.random.default_rng(seed)
    cv = CrossValidation(target=y)
    has_seed = all(c in table.columns for c in SEED_COLUMNS)
    bar = tqdm(total=repeats * k, desc=f"fitting ({target})", unit="fit", disable=not progress, leave=False)
    for _ in range(repeats):
        oof, oof_single, oof_seed = (np.full(n, np.nan) for _ in range(3))
        for test in _folds(n, k, rng):
            train = np.setdiff1d(np.arange(n), test)
            tr, te = table.iloc[train], table.iloc[test]
            oof[test] = make_proxy().fit(tr, y[train]).predict(te)
            # Best single metric, chosen (with its sign) on the training rows only.
            rhos = {c: spearman(tr[c].to_numpy(float), y[train]) for c in features}
            rhos = {c: r for c, r in rhos.items() if np.isfinite(r)}
            best = max(rhos, key=lambda c: abs(rhos[c]))
            cv.chosen_single[best] = cv.chosen_single.get(best, 0) + 1
            oof_single[test] = np.sign(rhos[best]) * te[best].to_numpy(float)
            if has_seed:
                oof_seed[test] = seed_calibration(tr).predict(te)
            if len(test) >= 5:
                cv.composite_fold_rho.append(spearman(oof[test], y[test]))
                cv.best_single_fold_rho.append(spearman(oof_single[test], y[test]))
            bar.update(1)
        cv.composite.append(oof)
        cv.best_single.append(oof_single)
        if has_seed:
            cv.seed.append(oof_seed)
    bar.close()
    return cv


def single_metric_table(table: pd.DataFrame, target: str, features: Sequence[str]) -> pd.DataFrame:
    """ρ, τ, top-3 recall and a bootstrap CI of each metric on its own (no fitting)."""
    y = table[target].to_numpy(float)
    rows = []
    for c in features:
        x = table[c].to_numpy(float)
        rows.append({"metric": c, "spearman": spearman(x, y), "kendall": kendall(x, y),
                     "top3_recall": top_k_recall(x, y), "top3_recall_negated": top_k_recall(-x, y),
                     "spearman_ci95_low": (ci := bootstrap_ci(x, y))[0], "spearman_ci95_high": ci[1]})
    return pd.DataFrame(rows).sort_values("spearman", key=np.abs, ascending=False, ignore_index=True)


def numeric_features(table: pd.DataFrame, target: str, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric, non-constant columns other than the target (candidates for the composite)."""
    out = []
    for c in table.columns:
        if c == target or c in exclude or not pd.api.types.is_numeric_dtype(table[c]):
            continue
        finite = table[c].to_numpy(float)
        finite = finite[np.isfinite(finite)]
        if finite.size >= 2 and np.ptp(finite) > 0:
            out.append(c)
    return out


def correlation_report(table: pd.DataFrame, target: str, features: Sequence[str] | None = None, folds: int = 5,
                       repeats: int = 10, seed: int = 0, progress: bool = False
                       ) -> tuple[dict[str, Any], CrossValidation, pd.DataFrame]:
    """Cross-validated report of the composite vs the baselines; see the module docstring."""
    if target not in table.columns:
        raise ValueError(f"table has no target column {target!r} (columns: {', '.join(table.columns)})")
    table = table[np.isfinite(pd.to_numeric(table[target], errors="coerce"))].reset_index(drop=True)
    features = list(features) if features else numeric_features(table, target)
    if len(table) < 6:
        raise ValueError(f"need at least 6 rows with a finite {target!r} for a cross-validated report, got {len(table)}")
    cv = cross_validate(table, target, features, folds, repeats, seed, progress=progress)
    singles = single_metric_table(table, target, features)
    comp = cv.summary(cv.composite)
    report: dict[str, Any] = {
        "target": target,
        "n_rows": len(table),
        "features": list(features),
        "protocol": {
            "kind": "leave-one-out" if len(cv.composite[0]) < 2 * folds else "repeated k-fold",
            "folds": min(folds, len(table)) if len(table) >= 2 * folds else len(table),
            "repeats": len(cv.composite), "seed": seed,
            "statistic": "rank statistics of out-of-fold predictions vs target, averaged over repeats; "
                         "CI = 95% bootstrap over rows of the repeat-averaged out-of-fold predictions",
        },
        "composite_spearman_cv": comp["spearman"],
        "composite_kendall_cv": comp["kendall"],
        "composite_top3_recall_cv": comp["top3_recall"],
        "composite_spearman_cv_ci95": comp["spearman_ci95"],
        "composite_spearman_cv_mean_per_fold": float(np.mean(cv.composite_fold_rho)) if cv.composite_fold_rho else None,
        "best_single_metric_in_fold": {**cv.summary(cv.best_single),
                                       "spearman_mean_per_fold": float(np.mean(cv.best_single_fold_rho)) if cv.best_single_fold_rho else None,
                                       "chosen": cv.chosen_single},
        "single_metrics": singles.to_dict(orient="records"),
    }
    if cv.seed:
        report["seed_weights_cv"] = cv.summary(cv.seed)
    if "val_acc" in features:
        report["val_acc_alone"] = next(r for r in report["single_metrics"] if r["metric"] == "val_acc")
    return report, cv, singles
