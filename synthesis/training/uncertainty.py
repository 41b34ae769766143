"""Uncertainty from class probabilities: entropy, the members' disagreement, greedy ensemble selection,
selective classification (a reliability threshold) and the risk–coverage curve.

All numpy, no torch: predict's ONNX process uses them. Entropies are in nats.

* predictive entropy ``H[p̄] = -Σ_k p̄_k log p̄_k`` of the (ensemble's mean) probabilities: total uncertainty;
* mutual information ``H[p̄] - mean_m H[p_m]`` (the members' disagreement, "epistemic" uncertainty):
  zero when every member says the same, at most ``log M``;
* greedy ensemble selection (Caruana et al. 2004): forward selection with replacement of the member whose
  addition most lowers the validation log-loss of the weighted average, stopping when none lowers it;
* risk–coverage: keep the galaxies whose entropy is lowest, the error rate among those kept against the share
  kept; its area (AURC) is the mean of that error over every coverage (lower is better). :func:`plot_risk_coverage`
  draws it (the ensemble card's ``risk_coverage.png`` and the study report); matplotlib loads only there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

EPS = 1e-12


def predictive_entropy(probabilities: np.ndarray) -> np.ndarray:
    """``-Σ p log p`` over the last axis (0 log 0 = 0)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return -(p * np.log(np.clip(p, EPS, None))).sum(axis=-1)


def mutual_information(member_probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Entropy of the (weighted) mean minus the mean of the members' entropies, for members [M, N, K]: [N]."""
    members = np.asarray(member_probabilities, dtype=np.float64)
    w = np.full(len(members), 1.0 / len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mean = np.tensordot(w, members, axes=1)
    return np.clip(predictive_entropy(mean) - np.tensordot(w, predictive_entropy(members), axes=1), 0.0, None)


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    p = np.asarray(probabilities, dtype=np.float64)[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.log(np.clip(p, EPS, None)).mean())


@dataclass(frozen=True)
class Selection:
    """Greedy selection's result: each chosen candidate's times picked, and the validation log-loss as it went."""

    counts: dict[int, int]
    losses: tuple[float, ...]

    @property
    def members(self) -> list[int]:
        return sorted(self.counts)

    def weights(self) -> np.ndarray:
        """Each member's weight (times picked / picks), in :attr:`members` order."""
        picks = sum(self.counts.values())
        return np.array([self.counts[m] / picks for m in self.members])


def greedy_selection(candidate_probabilities: np.ndarray, labels: np.ndarray, max_picks: int = 5) -> Selection:
    """Caruana et al. (2004): start from the best single candidate ([C, N, K] calibrated probabilities on the
    validation split), then add (with replacement) the candidate that most lowers the log-loss of the running
    average, up to ``max_picks`` picks; stop as soon as no candidate lowers it."""
    candidates = np.asarray(candidate_probabilities, dtype=np.float64)
    losses = [log_loss(c, labels) for c in candidates]
    first = int(np.argmin(losses))
    counts, total, history = {first: 1}, candidates[first].copy(), [losses[first]]
    for picks in range(1, max_picks):
        trial = [log_loss((total + c) / (picks + 1), labels) for c in candidates]
        best = int(np.argmin(trial))
        if trial[best] >= history[-1] - 1e-12:
            break
        counts[best] = counts.get(best, 0) + 1
        total += candidates[best]
        history.append(trial[best])
    return Selection(counts, tuple(history))


def risk_coverage(uncertainty: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(coverage, error rate among those kept, AURC): galaxies kept in order of rising ``uncertainty``
    (ties kept together: the curve has a point only where the threshold can fall)."""
    order = np.argsort(np.asarray(uncertainty, dtype=np.float64), kind="stable")
    u = np.asarray(uncertainty, dtype=np.float64)[order]
    errors = np.cumsum(~np.asarray(correct, dtype=bool)[order])
    kept = np.arange(1, len(u) + 1)
    last_of_tie = np.r_[u[1:] != u[:-1], True]
    coverage, risk = kept[last_of_tie] / len(u), errors[last_of_tie] / kept[last_of_tie]
    # AURC: the mean over every coverage k/N of the risk there (tied galaxies share the risk of their group)
    per_rank = np.repeat(risk, np.diff(np.r_[0, kept[last_of_tie]]))
    return coverage, risk, float(per_rank.mean()) if len(per_rank) else float("nan")


def entropy_threshold(entropy: np.ndarray, correct: np.ndarray, target_error: float) -> float:
    """The largest entropy threshold whose kept galaxies (entropy ≤ threshold) have an error rate ≤ ``target_error``
    on this (validation) split; -inf when not even the most certain galaxy meets it."""
    order = np.argsort(np.asarray(entropy, dtype=np.float64), kind="stable")
    u = np.asarray(entropy, dtype=np.float64)[order]
    errors = np.cumsum(~np.asarray(correct, dtype=bool)[order])
    rate = errors / np.arange(1, len(u) + 1)
    allowed = np.flatnonzero((rate <= target_error) & np.r_[u[1:] != u[:-1], True])
    return float(u[allowed[-1]]) if len(allowed) else float("-inf")


def plot_risk_coverage(curves: Mapping[str, tuple[Sequence[float], Sequence[float], float]], path: Path | str) -> None:
    """Draw named test-split risk–coverage curves, each ``(coverage, error rate, AURC)`` as :func:`risk_coverage`
    returns it, into ``path`` (each legend entry gives its AURC)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):  # the same figure wherever it is drawn (Optuna's plots switch styles)
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        for name, (coverage, risk, aurc) in curves.items():
            ax.plot(coverage, risk, label=f"{name} (AURC {aurc:.3f})")
        ax.set_xlabel("coverage (share of galaxies kept, least certain set aside)")
        ax.set_ylabel("error rate among those kept (test split)")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("Risk–coverage on the test split", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
