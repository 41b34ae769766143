"""The composite proxy: a learned map from a trial's metrics to full-training accuracy, sklearn-shaped.

``CompositeProxy().fit(X, y)`` learns, from rows of metrics with a known target (full-training
accuracy), a predictor whose ``predict(X)`` returns a score in the target's units. It follows the
scikit-learn estimator contract: constructor parameters are stored untouched, everything learned
lives in attributes with a trailing underscore (``features_``, ``learner_``, ``weights_``,
``trees_``, ``selection_``…), ``get_params``/``set_params`` and ``sklearn.base.clone`` work, and a
refit starts from the constructor's parameters again. ``save``/``load`` keep a fitted proxy as one
JSON file (never a pickle); ``calibration_hash`` identifies it.

Two learners, chosen inside ``fit`` by an inner cross-validation (so an outer cross-validation of
``fit``/``predict`` stays honest):

* ``linear``: per metric a monotone transform (rank-gauss by default: the metric's empirical CDF
  among the training rows mapped through the normal quantile function; immune to heavy tails and
  ±inf), keep the ``m`` metrics whose rank correlation with the target is strongest *on the
  training rows*, then ridge weights with the strength chosen by exact leave-one-out error. ``m``
  comes from the same inner cross-validation. Readable: a weight per metric.
* ``trees``: scikit-learn's ``HistGradientBoostingRegressor`` on the raw metrics (missing values
  handled natively), saved as its own trees in JSON and evaluated here without scikit-learn. A
  candidate only from :data:`TREES_MIN_ROWS` rows (docs/BENCHMARKS.md measures why).

Missing values carry information: a metric that could not be computed (NaN; e.g. NASWOT on a
degenerate network) ranks *below* every finite value and ``-inf``, and a 0/1 "missing" indicator
column joins the candidates wherever a metric has missing values among the training rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from galaxy_common import atomic_write_text
from galaxy_common import spearman, spearman_columns
from proxies.transforms import FeatureTransform
from proxies.trees import fit_trees, inner_cv_trees, predict_trees

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 25))


FEATURE_COUNTS = (1, 2, 3, 5, 8)  # candidate sizes for max_features="auto" (plus "all")


INNER_LOO_MAX_ROWS = 30


TREES_MIN_ROWS = 100  # below this the trees are not a candidate of learner="auto"


MISSING_SUFFIX = "__missing"


FORMAT_LINEAR = "galaxy-synth-composite-proxy/1"  # unchanged since the first calibrations: their hashes stay valid


FORMAT_TREES = "galaxy-synth-composite-proxy/2"


class MissingMetricError(ValueError):
    """The table lacks a metric that the calibration needs."""


class CompositeProxy(RegressorMixin, BaseEstimator):
    """Predict a target (e.g. full-training accuracy) from a trial's metrics.

    Parameters
    ----------
    features:
        Candidate metric columns; ``None`` = every numeric column (except a string ``y``'s column).
    transform:
        ``"rankgauss"`` (default) or ``"z"``, for the linear learner.
    alphas:
        Ridge strengths searched by leave-one-out.
    name:
        A label saved with the calibration.
    max_features:
        Linear learner: ``"auto"`` (default) keeps the best ``m`` metrics, ``m`` chosen by inner
        cross-validation; an int keeps that many (ranked by |Spearman ρ| on the training rows);
        ``None`` keeps every usable metric.
    learner:
        ``"auto"`` (default): linear or trees by inner cross-validation (trees from
        :data:`TREES_MIN_ROWS` rows); ``"linear"``; ``"trees"``.
    missing_indicators:
        Add a 0/1 column per metric with missing values among the training rows (default True).
    random_state:
        Seed of the inner folds and the trees.
    """

    def __init__(self, features: Sequence[str] | None = None, transform: str = "rankgauss",
                 alphas: Sequence[float] = DEFAULT_ALPHAS, name: str = "fitted", max_features: int | str | None = "auto",
                 learner: str = "auto", missing_indicators: bool = True, random_state: int = 0) -> None:
        self.features = features
        self.transform = transform
        self.alphas = alphas
        self.name = name
        self.max_features = max_features
        self.learner = learner
        self.missing_indicators = missing_indicators
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.transform not in ("rankgauss", "z"):
            raise ValueError(f"transform must be 'rankgauss' or 'z', not {self.transform!r}")
        m = self.max_features
        if not (m is None or m == "auto" or (isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 1)):
            raise ValueError(f"max_features must be 'auto', a positive int or None, not {m!r}")
        if self.learner not in ("auto", "linear", "trees"):
            raise ValueError(f"learner must be 'auto', 'linear' or 'trees', not {self.learner!r}")

    def fit(self, X: pd.DataFrame, y: str | Sequence[float]) -> CompositeProxy:
        """Learn from rows ``X`` (one column per metric) and the target ``y`` (values, or a column of ``X``)."""
        self._check_params()
        target_column = y if isinstance(y, str) else None
        y = np.asarray(X[y] if isinstance(y, str) else y, dtype=float)
        candidates = list(self.features) if self.features is not None else [
            c for c in X.columns if c != target_column and pd.api.types.is_numeric_dtype(X[c])]
        _require(X, candidates, self.name)
        ok = np.isfinite(y)
        if ok.sum() < 3:
            raise ValueError(f"need at least 3 rows with a finite target to fit, got {int(ok.sum())}")
        X, y = X.loc[ok], y[ok]
        raw = {c: pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float) for c in candidates}
        used = [c for c in candidates if _varies(raw[c])]
        indicators = [c for c in used if self.missing_indicators and np.isnan(raw[c]).any() and not np.isnan(raw[c]).all()]
        if not used:
            raise ValueError("no usable (non-constant, numeric) metric columns to fit on")
        columns = used + [c + MISSING_SUFFIX for c in indicators]
        values = np.column_stack([raw[c] for c in used] + [np.isnan(raw[c]).astype(float) for c in indicators])
        transforms = [FeatureTransform.fit(c, values[:, j], self.transform) for j, c in enumerate(columns)]
        z = np.column_stack([t.transform(values[:, j]) for j, t in enumerate(transforms)])

        choice, scores = self._choose(z, values, y)
        self.n_features_in_ = len(columns)
        self.feature_names_in_ = np.asarray(columns, dtype=object)
        self.selection_ = {"learner": self.learner, "max_features": self.max_features, "chosen": choice,
                           "of": len(columns), "inner_cv_spearman": scores, "rows": int(len(y))}
        self.trees_ = None
        self.weights_ = None
        if choice == "trees":
            self.learner_ = "trees"
            self.features_ = columns
            self.transforms_ = []
            self.trees_ = fit_trees(values, y, self.random_state)
            self.intercept_, self.alpha_ = 0.0, None
            self.selection_["kept"] = len(columns)
            return self
        m = int(choice.split(":")[1])
        keep = _strongest(z, y, m)
        self.learner_ = "linear"
        self.selection_["kept"] = m
        self.transforms_ = [transforms[j] for j in keep]
        self.features_ = [t.name for t in self.transforms_]
        y_mean = float(y.mean())
        self.alpha_, self.weights_, offset = _ridge_loo(z[:, keep], y - y_mean, self.alphas)
        self.intercept_ = y_mean - offset
        return self

    def _choose(self, z: np.ndarray, values: np.ndarray, y: np.ndarray) -> tuple[str, dict[str, float]]:
        """``"linear:m"`` or ``"trees"``, by inner cross-validated Spearman ρ (ties → the simpler)."""
        n_cols = z.shape[1]
        if self.learner == "trees":
            return "trees", {}
        if self.max_features is None:
            linear = [n_cols]
        elif self.max_features != "auto":
            linear = [min(int(self.max_features), n_cols)]
        elif len(y) < 6:  # too few rows to cross-validate a choice: the single strongest metric
            return "linear:1", {}
        else:
            linear = sorted({m for m in FEATURE_COUNTS if m < n_cols} | {n_cols})
        with_trees = self.learner == "auto" and len(y) >= TREES_MIN_ROWS
        if len(linear) == 1 and not with_trees:
            return f"linear:{linear[0]}", {}
        folds = _inner_folds(len(y), self.random_state)
        scores = {f"linear:{m}": _inner_cv_spearman(z, y, m, self.alphas, folds) for m in linear}
        if with_trees:
            scores["trees"] = inner_cv_trees(values, y, folds, self.random_state)
        order = [f"linear:{m}" for m in linear] + (["trees"] if with_trees else [])
        best = max(order, key=lambda k: (np.nan_to_num(scores[k], nan=-2.0), -order.index(k)))
        return best, scores

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "learner_"):
            raise RuntimeError("CompositeProxy is not fitted: call fit() or load() first")
        if self.learner_ == "trees":
            return predict_trees(self.trees_, _raw_matrix(X, self.features_, self.name))
        return self._design(X) @ self.weights_ + self.intercept_

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        raw = _raw_matrix(X, [t.name for t in self.transforms_], self.name)
        cols = [t.transform(raw[:, j]) for j, t in enumerate(self.transforms_)]
        return np.column_stack(cols) if cols else np.zeros((len(X), 0))

    # -- readable summaries -------------------------------------------------------------------
    def coefficients(self) -> dict[str, float]:
        """Weight per kept metric (linear learner; empty for trees)."""
        if getattr(self, "learner_", None) != "linear":
            return {}
        return {t.name: float(w) for t, w in zip(self.transforms_, self.weights_)}

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the calibration came from (data, commands, numbers): saved beside it, not hashed."""
        return self.__dict__.setdefault("provenance_", {})

    @provenance.setter
    def provenance(self, value: dict[str, Any]) -> None:
        self.provenance_ = dict(value)

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "learner_"):
            raise RuntimeError("CompositeProxy is not fitted: nothing to save")
        if self.learner_ == "linear":
            body = {
                "format": FORMAT_LINEAR,
                "name": self.name,
                "transform": self.transform,
                "features": [t.to_dict() for t in self.transforms_],
                "weights": [float(w) for w in self.weights_],
                "intercept": self.intercept_,
                "alpha": self.alpha_,
            }
        else:
            body = {"format": FORMAT_TREES, "name": self.name, "learner": "trees", "features": list(self.features_),
                    "trees": self.trees_}
        body["hash"] = _hash(body)
        body["selection"] = getattr(self, "selection_", {})  # how the learner was chosen: informative, not the model
        body["provenance"] = self.provenance
        return body

    @property
    def calibration_hash(self) -> str:
        return self.to_dict()["hash"]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompositeProxy:
        fmt = data.get("format")
        if fmt not in (FORMAT_LINEAR, FORMAT_TREES):
            raise ValueError(f"not a galaxy-synth proxy calibration (format {fmt!r})")
        if fmt == FORMAT_LINEAR:
            proxy = cls(transform=data["transform"], name=data.get("name", "fitted"), learner="linear")
            proxy.transforms_ = [FeatureTransform(**{k: f[k] for k in ("name", "kind", "mean", "std", "quantiles") if k in f})
                                 for f in data["features"]]
            proxy.features_ = [t.name for t in proxy.transforms_]
            proxy.weights_ = np.asarray(data["weights"], dtype=float)
            proxy.intercept_ = float(data["intercept"])
            proxy.alpha_ = data.get("alpha")
            proxy.learner_, proxy.trees_ = "linear", None
        else:
            proxy = cls(name=data.get("name", "fitted"), learner="trees")
            proxy.features_ = list(data["features"])
            proxy.trees_ = data["trees"]
            proxy.transforms_, proxy.weights_, proxy.intercept_, proxy.alpha_ = [], None, 0.0, None
            proxy.learner_ = "trees"
        proxy.n_features_in_ = len(proxy.features_)
        proxy.selection_ = dict(data.get("selection", {}))
        proxy.provenance = dict(data.get("provenance", {}))
        if "hash" in data and _hash({k: v for k, v in data.items() if k not in ("hash", "selection", "provenance")}) != data["hash"]:
            raise ValueError("proxy calibration does not match its own hash (edited by hand?)")
        return proxy

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2))  # never a half-written calibration

    @classmethod
    def load(cls, path: str | os.PathLike) -> CompositeProxy:
        """Read a calibration file: JSON only (a pickle is refused, it could run code)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read proxy calibration {path}: {exc.strerror}") from None
        if raw[:1] == b"\x80" or raw[:2] == b"PK":
            raise ValueError(f"{path} is a pickle or archive, not a JSON calibration: refused (loading it could run code)")
        try:
            return cls.from_dict(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read proxy calibration {path}: {exc}") from None


def _hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns and not (c.endswith(MISSING_SUFFIX) and c[: -len(MISSING_SUFFIX)] in table.columns)]
    if missing:
        raise MissingMetricError(f"metric table has no column {missing[0]!r}, required by calibration {name!r}"
                                 + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))


def _raw_matrix(table: pd.DataFrame, columns: Sequence[str], name: str) -> np.ndarray:
    """The columns as floats; ``metric__missing`` indicators made from their metric."""
    _require(table, columns, name)
    out = []
    for c in columns:
        if c in table.columns:
            out.append(pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float))
        else:
            out.append(np.isnan(pd.to_numeric(table[c[: -len(MISSING_SUFFIX)]], errors="coerce").to_numpy(dtype=float)).astype(float))
    return np.column_stack(out) if out else np.zeros((len(table), 0))


def _varies(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return (finite.size >= 2 and np.ptp(finite) > 0) or (np.isnan(values).any() and np.isfinite(values).any())


def _strongest(z: np.ndarray, y: np.ndarray, m: int) -> list[int]:
    """Indices of the ``m`` columns with the largest |Spearman ρ| with ``y`` (stable order)."""
    order = np.argsort(-np.abs(spearman_columns(z, y)), kind="stable")
    return sorted(order[:m].tolist())


def _inner_folds(n: int, seed: int) -> np.ndarray:
    # Fixed-seed folds: the fit stays deterministic, and row order (often sorted) does not leak in.
    return np.arange(n) if n <= INNER_LOO_MAX_ROWS else np.random.default_rng(seed).permutation(n) % 5


def _inner_cv_spearman(z: np.ndarray, y: np.ndarray, m: int, alphas: Sequence[float], folds: np.ndarray) -> float:
    """Out-of-fold Spearman ρ of select-``m``-then-ridge on these rows."""
    pred = np.empty(len(y))
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        keep = _strongest(z[train], y[train], m)
        y_mean = float(y[train].mean())
        _, w, offset = _ridge_loo(z[train][:, keep], y[train] - y_mean, alphas)
        pred[test] = z[test][:, keep] @ w + y_mean - offset
    return spearman(pred, y)


def _ridge_loo(z: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> tuple[float, np.ndarray, float]:
    """Ridge of centred ``y`` on centred ``z``; alpha by exact leave-one-out error (all alphas at once).

    Returns ``(alpha, weights, mean(z) @ weights)``; the last term moves into the intercept.
    """
    mu = z.mean(axis=0)
    u, s, vt = np.linalg.svd(z - mu, full_matrices=False)
    uty = u.T @ y
    a = np.asarray(alphas, dtype=float)[:, None]
    d = s**2 / (s**2 + a)  # [alphas, k]
    fitted = (d * uty) @ u.T  # [alphas, n]
    h = (u**2) @ d.T + 1.0 / len(y)  # [n, alphas], + the intercept's leverage
    loo = (y[:, None] - fitted.T) / np.clip(1 - h, 1e-6, None)
    best = int(np.argmin((loo**2).mean(axis=0)))
    alpha = float(alphas[best])
    w = vt.T @ ((s / (s**2 + alpha)) * uty)
    return alpha, w, float(mu @ w)
