"""The composite proxy: per-metric transforms + standardisation + linear weights, sklearn-shaped.

``CompositeProxy().fit(table, target)`` learns, from rows of metrics with a known target
(full-training accuracy), for every metric a monotone transform and then ridge weights;
``predict(table)`` returns a score in the target's units. ``save``/``load`` keep everything
(transform statistics, weights, provenance) in one JSON file; ``calibration_hash`` identifies it.

Transforms (per metric, learned from the training rows only):

* ``rankgauss`` (default): the metric's empirical CDF among the training rows mapped through the
  normal quantile function. Monotone, immune to heavy tails (SynFlow, gradient norms) and to
  ±inf (NASWOT's log-determinant can be −inf), and it makes a linear model rank-based.
* ``z``: plain standardisation, (x − mean) / std — what the seed composite used.

Weights: ridge regression on the transformed metrics, its strength chosen by exact
leave-one-out error on the training rows (closed form), so small ground-truth sets do not overfit.

Feature selection (``max_features``): with a couple of dozen ground-truth rows, a ridge over ~20
metrics loses to the one good metric even out of sample. So the fit keeps the ``m`` metrics whose
rank correlation with the target is strongest *on its own training rows*, with ``m`` chosen
("auto") by an inner cross-validation of the whole select-then-ridge procedure (leave-one-out up
to 30 rows, 5-fold above). Everything happens inside ``fit``, so an outer cross-validation of
``fit``/``predict`` stays honest.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from proxies.atomic_io import atomic_write_text

N_QUANTILES = 101  # stored reference points of each rank-gauss transform
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 25))
FEATURE_COUNTS = (1, 2, 3, 5, 8)  # candidate sizes for max_features="auto" (plus "all")
INNER_LOO_MAX_ROWS = 30


class MissingMetricError(ValueError):
    """The table lacks a metric that the calibration needs."""


@dataclass
class FeatureTransform:
    name: str
    kind: str  # "rankgauss" | "z"
    mean: float = 0.0
    std: float = 1.0
    quantiles: list[float] = field(default_factory=list)  # reference values at evenly spaced CDF levels

    @classmethod
    def fit(cls, name: str, values: np.ndarray, kind: str) -> FeatureTransform:
        finite = values[np.isfinite(values)]
        if kind == "z":
            return cls(name, kind, float(finite.mean()), float(finite.std()) or 1.0)
        # Keep -inf/+inf as extreme ranks: they carry order information.
        ordered = np.sort(np.where(np.isnan(values), np.nanmedian(values), values))
        probs = np.linspace(0, 1, N_QUANTILES)
        q = np.quantile(np.clip(ordered, -1e300, 1e300), probs, method="linear")
        return cls(name, kind, quantiles=[float(v) for v in q])

    def transform(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if self.kind == "z":
            out = (values - self.mean) / self.std
            return np.where(np.isnan(out), 0.0, np.clip(out, -6, 6))
        q = np.asarray(self.quantiles)
        v = np.clip(np.where(np.isnan(values), np.median(q), values), -1e300, 1e300)
        # Mid-rank of v among the reference quantiles (ties share a level), as a CDF in (0, 1).
        lo = np.searchsorted(q, v, side="left")
        hi = np.searchsorted(q, v, side="right")
        cdf = (lo + hi) / 2.0 / len(q)
        cdf = np.clip(cdf, 0.5 / len(q), 1 - 0.5 / len(q))
        return stats.norm.ppf(cdf)


class CompositeProxy:
    """Predict a target (e.g. full-training accuracy) from a trial's metrics.

    Parameters
    ----------
    features:
        Metric columns to use; ``None`` = every numeric column except the target.
    transform:
        ``"rankgauss"`` (default) or ``"z"``.
    alphas:
        Ridge strengths searched by leave-one-out.
    max_features:
        ``"auto"`` (default): keep the best ``m`` metrics, ``m`` chosen by inner cross-validation;
        an int: keep that many (ranked by |Spearman ρ| with the target on the training rows);
        ``None``: keep every usable metric.
    """

    def __init__(self, features: Sequence[str] | None = None, transform: str = "rankgauss",
                 alphas: Sequence[float] = DEFAULT_ALPHAS, name: str = "fitted",
                 max_features: int | str | None = "auto") -> None:
        if transform not in ("rankgauss", "z"):
            raise ValueError(f"transform must be 'rankgauss' or 'z', not {transform!r}")
        if not (max_features is None or max_features == "auto" or (isinstance(max_features, int) and max_features >= 1)):
            raise ValueError(f"max_features must be 'auto', a positive int or None, not {max_features!r}")
        self.max_features = max_features
        self.features = list(features) if features is not None else None
        self.transform_kind = transform
        self.alphas = tuple(alphas)
        self.name = name
        self.transforms: list[FeatureTransform] = []
        self.weights: np.ndarray | None = None
        self.intercept: float = 0.0
        self.alpha: float | None = None
        self.selection: dict[str, Any] = {}
        self.provenance: dict[str, Any] = {}

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame, target: str | Sequence[float]) -> CompositeProxy:
        y = np.asarray(table[target] if isinstance(target, str) else target, dtype=float)
        candidates = self.features or [c for c in table.columns
                                       if c != target and pd.api.types.is_numeric_dtype(table[c])]
        self._require(table, candidates)
        ok = np.isfinite(y)
        if ok.sum() < 3:
            raise ValueError(f"need at least 3 rows with a finite target to fit, got {int(ok.sum())}")
        table, y = table.loc[ok], y[ok]
        used = []
        for c in candidates:
            col = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float)
            finite = col[np.isfinite(col)]
            if finite.size >= 2 and np.ptp(finite) > 0:  # constant or empty columns carry nothing
                used.append(c)
        if not used:
            raise ValueError("no usable (non-constant, numeric) metric columns to fit on")
        transforms = [FeatureTransform.fit(c, pd.to_numeric(table[c], errors="coerce").to_numpy(float), self.transform_kind)
                      for c in used]
        z = np.column_stack([t.transform(pd.to_numeric(table[t.name], errors="coerce").to_numpy(float)) for t in transforms])
        m, scores = self._choose_size(z, y)
        keep = _strongest(z, y, m)
        self.selection = {"max_features": self.max_features, "kept": m, "of": len(used),
                          "inner_cv_spearman": scores}
        self.transforms = [transforms[j] for j in keep]
        self.features = [t.name for t in self.transforms]
        y_mean = float(y.mean())
        self.alpha, self.weights, offset = _ridge_loo(z[:, keep], y - y_mean, self.alphas)
        self.intercept = y_mean - offset
        return self

    def _choose_size(self, z: np.ndarray, y: np.ndarray) -> tuple[int, dict[str, float]]:
        n_cols = z.shape[1]
        if self.max_features is None:
            return n_cols, {}
        if self.max_features != "auto":
            return min(int(self.max_features), n_cols), {}
        sizes = sorted({m for m in FEATURE_COUNTS if m < n_cols} | {n_cols})
        if len(y) < 6:  # too few rows to cross-validate a choice: the single strongest metric
            return 1, {}
        scores = {str(m): _inner_cv_spearman(z, y, m, self.alphas) for m in sizes}
        best = max(sizes, key=lambda m: (np.nan_to_num(scores[str(m)], nan=-2.0), -m))  # ties → fewer metrics
        return best, scores

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("CompositeProxy is not fitted: call fit() or load() first")
        return self._design(table) @ self.weights + self.intercept

    def _design(self, table: pd.DataFrame) -> np.ndarray:
        self._require(table, [t.name for t in self.transforms])
        cols = [t.transform(pd.to_numeric(table[t.name], errors="coerce").to_numpy(float)) for t in self.transforms]
        return np.column_stack(cols) if cols else np.zeros((len(table), 0))

    def _require(self, table: pd.DataFrame, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise MissingMetricError(f"metric table has no column {missing[0]!r}, required by calibration {self.name!r}"
                                     + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))

    # -- weights as a readable table ------------------------------------------------------------
    def coefficients(self) -> dict[str, float]:
        return {t.name: float(w) for t, w in zip(self.transforms, self.weights if self.weights is not None else [])}

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        body = {
            "format": "galaxy-synth-composite-proxy/1",
            "name": self.name,
            "transform": self.transform_kind,
            "features": [t.__dict__ for t in self.transforms],
            "weights": [float(w) for w in (self.weights if self.weights is not None else [])],
            "intercept": self.intercept,
            "alpha": self.alpha,
        }
        body["hash"] = _hash(body)
        body["selection"] = self.selection  # how the features were chosen: informative, not part of the model
        body["provenance"] = self.provenance
        return body

    @property
    def calibration_hash(self) -> str:
        return self.to_dict()["hash"]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompositeProxy:
        if data.get("format") != "galaxy-synth-composite-proxy/1":
            raise ValueError(f"not a galaxy-synth proxy calibration (format {data.get('format')!r})")
        proxy = cls(transform=data["transform"], name=data.get("name", "fitted"))
        proxy.transforms = [FeatureTransform(**f) for f in data["features"]]
        proxy.features = [t.name for t in proxy.transforms]
        proxy.weights = np.asarray(data["weights"], dtype=float)
        proxy.intercept = float(data["intercept"])
        proxy.alpha = data.get("alpha")
        proxy.selection = dict(data.get("selection", {}))
        proxy.provenance = dict(data.get("provenance", {}))
        return proxy

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2))  # never a half-written calibration

    @classmethod
    def load(cls, path: str | os.PathLike) -> CompositeProxy:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read proxy calibration {path}: {exc}") from None


def _hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _strongest(z: np.ndarray, y: np.ndarray, m: int) -> list[int]:
    """Indices of the ``m`` columns with the largest |Spearman ρ| with ``y`` (stable order)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.array([stats.spearmanr(z[:, j], y).statistic if np.ptp(z[:, j]) > 0 else 0.0
                        for j in range(z.shape[1])])
    order = np.argsort(-np.nan_to_num(np.abs(rho)), kind="stable")
    return sorted(order[:m].tolist())


def _inner_cv_spearman(z: np.ndarray, y: np.ndarray, m: int, alphas: Sequence[float]) -> float:
    """Out-of-fold Spearman ρ of select-``m``-then-ridge on these rows (LOO, or 5-fold when many)."""
    n = len(y)
    # Fixed-seed folds: the fit stays deterministic, and row order (often sorted) does not leak in.
    folds = np.arange(n) if n <= INNER_LOO_MAX_ROWS else np.random.default_rng(0).permutation(n) % 5
    pred = np.empty(n)
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        keep = _strongest(z[train], y[train], m)
        y_mean = float(y[train].mean())
        _, w, offset = _ridge_loo(z[train][:, keep], y[train] - y_mean, alphas)
        pred[test] = z[test][:, keep] @ w + y_mean - offset
    if np.ptp(pred) == 0:
        return float("nan")
    return float(stats.spearmanr(pred, y).statistic)


def _ridge_loo(z: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> tuple[float, np.ndarray, float]:
    """Ridge of centred ``y`` on centred ``z``; alpha by exact leave-one-out error.

    Returns ``(alpha, weights, mean(z) @ weights)``; the last term moves into the intercept.
    """
    mu = z.mean(axis=0)
    zc = z - mu
    u, s, vt = np.linalg.svd(zc, full_matrices=False)
    uty = u.T @ y
    best = (np.inf, alphas[0])
    for a in alphas:
        d = s**2 / (s**2 + a)
        fitted = u @ (d * uty)
        h = np.einsum("ij,j,ij->i", u, d, u) + 1.0 / len(y)  # + intercept's leverage
        loo = (y - fitted) / np.clip(1 - h, 1e-6, None)
        err = float(np.mean(loo**2))
        if err < best[0]:
            best = (err, a)
    a = best[1]
    w = vt.T @ ((s / (s**2 + a)) * uty)
    return a, w, float(mu @ w)


def seed_calibration(stats_table: pd.DataFrame | None = None) -> CompositeProxy:
    """The composite-score seed's published weights as a named calibration.

    −0.701·z(train_loss) −0.671·z(grad_norm_mean) +0.406·z(val_loss) −0.395·z(train_loss_cv)
    +0.311·z(gap) (reported Spearman 0.743, in-sample, on the seed's own data). The z statistics
    come from ``stats_table`` (rows of metrics, e.g. a study's trials); the score is unitless.
    """
    weights = {"train_loss": -0.701, "grad_norm_mean": -0.671, "val_loss": 0.406, "train_loss_cv": -0.395, "gap": 0.311}
    proxy = CompositeProxy(features=list(weights), transform="z", name="seed-published")
    if stats_table is None:
        proxy.transforms = [FeatureTransform(n, "z") for n in weights]
    else:
        proxy.transforms = [FeatureTransform.fit(n, pd.to_numeric(stats_table[n], errors="coerce").to_numpy(float), "z")
                            for n in weights]
    proxy.weights = np.array(list(weights.values()))
    proxy.intercept = 0.0
    proxy.provenance = {"source": "composite-score seed, published weights (in-sample Spearman 0.743 on its data)",
                        "created": time.strftime("%Y-%m-%d")}
    return proxy
