"""Calibrated probabilities: temperature scaling fitted on the validation split, and the expected calibration error.

Astronomers select samples by probability thresholds ("p_spiral > 0.8"), so a softmax output should
mean what it says: of the galaxies given 0.8, about 80% should be right. Temperature scaling (Guo et
al. 2017) divides the logits by one scalar ``T`` fitted to minimise the negative log-likelihood on
held-out data: it changes no prediction (the arg-max is kept), only how confident they are, and
with one parameter it cannot overfit a validation split of a few hundred galaxies.

The expected calibration error (ECE) bins the predictions by confidence (15 equal-width bins) and
averages |accuracy − mean confidence| over the bins, weighted by their counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def view_probabilities(view_logits: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of ``logits / T`` averaged over views ([V, N, K] or [N, K]): TTA and single view alike."""
    logits = view_logits if view_logits.ndim == 3 else view_logits[None]
    return softmax(logits / temperature, axis=-1).mean(axis=0)


def fit_temperature(view_logits: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` minimising the NLL of ``labels`` under :func:`view_probabilities` (bounded search on log T)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    logits = np.asarray(view_logits, dtype=np.float64)

    def nll(log_t: float) -> float:
        t = float(np.exp(log_t))
        if logits.ndim == 2:  # one view: the log-softmax directly, no averaging (and no log of a rounded 0)
            return float(-log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels].mean())
        p = view_probabilities(logits, t)[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(p, 1e-12, None)).mean())

    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    best = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x)) if nll(best.x) <= nll(0.0) else 1.0


@dataclass(frozen=True)
class Reliability:
    """Per-bin counts, accuracy and mean confidence, and the ECE they add up to."""

    ece: float
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    accuracy: tuple[float | None, ...]
    confidence: tuple[float | None, ...]

    def to_dict(self) -> dict:
        return {"ece": self.ece, "bin_edges": list(self.edges), "counts": list(self.counts),
                "accuracy": list(self.accuracy), "confidence": list(self.confidence)}


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """Reliability table of top-1 confidence against correctness, and its expected calibration error."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts, accuracy, mean_conf, ece = [], [], [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        counts.append(n)
        if n == 0:
            accuracy.append(None)
            mean_conf.append(None)
            continue
        acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
        accuracy.append(acc)
        mean_conf.append(conf)
        ece += n / max(1, len(labels)) * abs(acc - conf)
    return Reliability(float(ece), tuple(map(float, edges)), tuple(counts), tuple(accuracy), tuple(mean_conf))


def plot_reliability(before: Reliability, after: Reliability, temperature: float, path, title: str = "") -> None:
    """Reliability diagram: accuracy per confidence bin before and after temperature scaling, beside the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for table, style, label in ((before, "o-", f"raw softmax (ECE {before.ece:.3f})"),
                                (after, "s-", f"temperature {temperature:.2f} (ECE {after.ece:.3f})")):
        points = [(c, a, n) for c, a, n in zip(table.confidence, table.accuracy, table.counts) if n]
        ax.plot([p[0] for p in points], [p[1] for p in points], style, ms=4, label=label)
    ax.set_xlabel("predicted confidence (top class)")
    ax.set_ylabel("fraction correct (test split)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or "Reliability on the test split", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class TemperatureCalibration:
    """Temperatures fitted on the validation split (single view, and the TTA average) and what they do on the test split."""

    temperature: float
    temperature_tta: float
    test_before: Reliability
    test_after: Reliability
    tta_before: Reliability
    tta_after: Reliability
    test_probabilities: np.ndarray  # calibrated, single view, [N_test, K]

    def to_dict(self) -> dict:
        return {"method": "temperature scaling fitted on the validation split (NLL); ECE on the test split, "
                          f"{ECE_BINS} equal-width confidence bins",
                "temperature": self.temperature, "temperature_tta": self.temperature_tta,
                "ece_before": self.test_before.ece, "ece_after": self.test_after.ece,
                "ece_tta_before": self.tta_before.ece, "ece_tta_after": self.tta_after.ece,
                "reliability_before": self.test_before.to_dict(), "reliability_after": self.test_after.to_dict()}


def split_view_logits(net, normalizer, split, views, perm, batch_size: int = 256) -> np.ndarray:
    """Logits [V, N, K] of ``net`` on every view of a cached split (the training loop's normalisation)."""
    import torch

    from synthesis.training.views import view_logits

    was_training = net.training
    net.eval()
    out = []
    for start in range(0, len(split), batch_size):
        x = normalizer(split.x[start:start + batch_size])
        extra = split.extra[start:start + batch_size]
        forward = (lambda v, e=extra: net(v, e)) if extra.shape[1] > 0 else net
        out.append(view_logits(forward, x, views, perm))
    net.train(was_training)
    return torch.cat(out, dim=1).cpu().numpy()


def calibrate_network(net, normalizer, val, test, views, perm) -> TemperatureCalibration:
    """Fit ``T`` (single view) and ``T_tta`` (the average over ``views``) on ``val``; measure both on ``test``."""
    val_logits = split_view_logits(net, normalizer, val, views, perm)
    test_logits = split_view_logits(net, normalizer, test, views, perm)
    y_val, y_test = val.y.cpu().numpy(), test.y.cpu().numpy()
    t = fit_temperature(val_logits[0], y_val)
    t_tta = fit_temperature(val_logits, y_val)
    calibrated = view_probabilities(test_logits[0], t)
    return TemperatureCalibration(
        t, t_tta, reliability(view_probabilities(test_logits[0], 1.0), y_test), reliability(calibrated, y_test),
        reliability(view_probabilities(test_logits, 1.0), y_test), reliability(view_probabilities(test_logits, t_tta), y_test),
        calibrated)
