"""Which scorer a rung should use, judged on the study's own evidence (no Optuna here: rows in, a choice out).

The evidence of a rung is every trial that went on past it: its signals at that rung (the metrics
of the epochs so far) and a label, its result at the highest rung it reached (see
:mod:`synthesis.search.scorer_versions`). Three candidates rank those trials:

* ``prior``: what the rung is scored by without evidence (the study's frozen calibration at the
  first rung, validation accuracy above it): the score the study started with;
* ``sturdy``: one signal that ranked well on every data set measured, ``train_loss`` (lower is better);
* ``fit``: a :class:`proxies.CompositeProxy` fitted on the evidence (the signals and the prior's
  score, so that it may keep the prior and correct it), judged out of fold.

The prior stands until the evidence says otherwise: below :data:`MIN_EVIDENCE` trials it is kept
unjudged; above, ``sturdy`` replaces it only where the bootstrap interval of ρ(sturdy) − ρ(prior)
lies above zero, and ``fit`` replaces the incumbent only where the interval of its out-of-fold ρ
minus the incumbent's lies above zero. Prior and sturdy are not fitted on the evidence, so their ρ
on it is honest as it stands; the fit's is out of fold (leave-one-out up to :data:`LOO_MAX_ROWS`
rows, 5 folds above).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from galaxy_common import spearman
from proxies import METRIC_NAMES, ZERO_COST_NAMES, CompositeProxy, guarded

MIN_EVIDENCE = 8  # fewer trials past a rung than this: the prior stands, unjudged
LOO_MAX_ROWS = 12  # leave-one-out up to this many rows, 5 folds above (a refit stays cheap beside a trial)
BOOTSTRAP_RESAMPLES = 1000
PRIOR_FEATURE = "prior_score"  # the prior's score, a column the fit may keep (its way of shrinking toward it)
STURDY_SIGNAL = "train_loss"  # lower is better; the strongest uncalibrated signal across data sets (BENCHMARKS §21)
CANDIDATES = ("prior", "sturdy", "fit")


@dataclass
class Evidence:
    """One rung's evidence: a row of signals per trial, its label (higher is better) and its prior score."""

    trials: list[int]
    signals: pd.DataFrame
    labels: np.ndarray
    prior: np.ndarray  # the prior's score of each row (already guarded against collapse)
    collapsed: np.ndarray  # bool per row

    def __len__(self) -> int:
        return len(self.trials)


@dataclass
class RungChoice:
    """Which candidate scores a rung, and why: what a scorer version stores per rung."""

    chosen: str = "prior"
    why: str = "no evidence yet"
    evidence: int = 0
    trials: list[int] = field(default_factory=list)
    rho: dict[str, float] = field(default_factory=dict)  # each candidate's ρ with the labels (the fit's out of fold)
    intervals: dict[str, list[float | None]] = field(default_factory=dict)  # "sturdy-prior", "fit-<incumbent>": 95% bootstrap
    proxy: dict[str, Any] | None = None  # the fitted proxy (to_dict) when the fit is chosen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RungChoice:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def summary(self) -> str:
        """One phrase: the candidate chosen, its ρ with the evidence, the interval that decided, why."""
        if self.rho.get(self.chosen) is None:
            return f"{self.chosen} ({self.why})"
        key = next((k for k in self.intervals if k.startswith(self.chosen + "-")), None) or next(reversed(self.intervals), None)
        delta = f", ρ {key.replace('-', ' − ')} [{_show(self.intervals[key][0])}, {_show(self.intervals[key][1])}]" if key else ""
        return f"{self.chosen} (ρ {self.rho[self.chosen]:.2f} with the results of {self.evidence} promoted trials{delta}; {self.why})"


def score_with(kind: str, signals: pd.DataFrame, prior: np.ndarray, collapsed: np.ndarray,
               proxy: CompositeProxy | None = None) -> np.ndarray:
    """The scores one candidate gives rows of signals (collapsed models below every learned one)."""
    if kind == "prior":
        return np.asarray(prior, dtype=float)
    if kind == "sturdy":
        raw = -pd.to_numeric(signals[STURDY_SIGNAL], errors="coerce").to_numpy(dtype=float)
    elif kind == "fit" and proxy is not None:
        raw = proxy.predict(with_prior(signals, prior))
    else:
        raise ValueError(f"unknown scorer {kind!r}")
    return np.array([guarded(float(s), bool(c)) for s, c in zip(raw, collapsed)])


def with_prior(signals: pd.DataFrame, prior: np.ndarray) -> pd.DataFrame:
    """The signals and, as one more column, the prior's score: a fit may keep the prior and correct it."""
    return signals.assign(**{PRIOR_FEATURE: np.asarray(prior, dtype=float)})


def fit_features(signals: pd.DataFrame) -> list[str]:
    """The columns a fit may use: every known metric and zero-cost score present, and the prior's score."""
    return [c for c in (*METRIC_NAMES, *ZERO_COST_NAMES, PRIOR_FEATURE) if c in signals.columns]


def fit_proxy(signals: pd.DataFrame, prior: np.ndarray, labels: np.ndarray, seed: int = 0) -> CompositeProxy:
    table = with_prior(signals, prior)
    return CompositeProxy(features=fit_features(table), name="in-study", learner="linear",
                          random_state=seed).fit(table, labels)


def out_of_fold(evidence: Evidence, seed: int = 0) -> np.ndarray:
    """The fit's score of each evidence row by a fit that never saw it (NaN where a fold cannot fit)."""
    n = len(evidence)
    folds = np.arange(n) if n <= LOO_MAX_ROWS else np.random.default_rng(seed).permutation(n) % 5
    pred = np.full(n, np.nan)
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        try:
            proxy = fit_proxy(evidence.signals[train], evidence.prior[train], evidence.labels[train], seed)
        except ValueError:  # too few finite rows or no usable metric in this fold
            continue
        pred[test] = score_with("fit", evidence.signals[test], evidence.prior[test], evidence.collapsed[test], proxy)
    return pred


def rho_difference_interval(better: np.ndarray, incumbent: np.ndarray, labels: np.ndarray,
                            seed: int = 0) -> list[float]:
    """95% bootstrap interval (trials resampled, paired) of ρ(better, labels) − ρ(incumbent, labels).

    All resamples at once (a refit runs inside the search's budget); rows where a score is missing are
    left out of both sides, so the two ρ are always on the same trials.
    """
    ok = np.isfinite(better) & np.isfinite(incumbent) & np.isfinite(labels)
    better, incumbent, labels = better[ok], incumbent[ok], labels[ok]
    n = len(labels)
    if n < 4:
        return [float("nan"), float("nan")]
    rows = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    difference = _rowwise_rho(better[rows], labels[rows]) - _rowwise_rho(incumbent[rows], labels[rows])
    difference = difference[np.isfinite(difference)]  # a resample where one side ties everywhere has no ρ
    if difference.size < BOOTSTRAP_RESAMPLES // 2:
        return [float("nan"), float("nan")]
    return [float(np.percentile(difference, 2.5)), float(np.percentile(difference, 97.5))]


def _rowwise_rho(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row of ``scores`` with the same row of ``labels`` (NaN where a side is constant)."""
    rs, rl = rankdata(scores, axis=-1), rankdata(labels, axis=-1)
    rs -= rs.mean(axis=-1, keepdims=True)
    rl -= rl.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rs * rl).sum(axis=-1) / np.sqrt((rs**2).sum(axis=-1) * (rl**2).sum(axis=-1))


def choose_rung_scorer(evidence: Evidence, min_evidence: int = MIN_EVIDENCE, seed: int = 0) -> RungChoice:
    """Prior, sturdy signal or in-study fit for one rung, by rank agreement with its evidence (see the module)."""
    n = len(evidence)
    choice = RungChoice(evidence=n, trials=list(evidence.trials))
    y = evidence.labels
    if n < min_evidence:  # how well the fixed candidates rank so far, for the console; no choice yet
        if n >= 3:
            sturdy = score_with("sturdy", evidence.signals, evidence.prior, evidence.collapsed)
            choice.rho = {"prior": _finite(spearman(evidence.prior, y)), "sturdy": _finite(spearman(sturdy, y))}
        choice.why = f"thin evidence: {n} promoted trials < {min_evidence}"
        return choice
    scores = {"prior": evidence.prior,
              "sturdy": score_with("sturdy", evidence.signals, evidence.prior, evidence.collapsed),
              "fit": out_of_fold(evidence, seed)}
    choice.rho = {k: _finite(spearman(v, y)) for k, v in scores.items()}
    sturdy_gain = [_finite(v) for v in rho_difference_interval(scores["sturdy"], scores["prior"], y, seed)]
    choice.intervals["sturdy-prior"] = sturdy_gain
    incumbent = "sturdy" if _above_zero(sturdy_gain) else "prior"
    fit_gain = [_finite(v) for v in rho_difference_interval(scores["fit"], scores[incumbent], y, seed)]
    choice.intervals[f"fit-{incumbent}"] = fit_gain
    if _above_zero(fit_gain):
        choice.chosen = "fit"
        choice.proxy = fit_proxy(evidence.signals, evidence.prior, y, seed).to_dict()
        choice.why = f"the in-study fit ranks the promoted trials better than {incumbent} (interval above zero)"
    elif incumbent == "sturdy":
        choice.chosen = "sturdy"
        choice.why = f"{STURDY_SIGNAL} ranks the promoted trials better than the prior (interval above zero); the fit does not beat it"
    else:
        choice.why = "neither the sturdy signal nor the in-study fit ranks measurably better than the prior"
    return choice


def _above_zero(interval: list[float | None]) -> bool:
    return interval[0] is not None and interval[0] > 0


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None  # JSON (study attrs) has no NaN


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
