"""Temperature scaling and the expected calibration error."""

import numpy as np
import pytest

from synthesis.training.temperature import (
    fit_temperature,
    reliability,
    view_probabilities,
)


def _calibrated_logits(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true class distribution: labels drawn from it are calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, k))
    p = view_probabilities(logits, 1.0)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return logits, labels


def test_an_overconfident_model_gets_its_temperature_back_and_its_ece_falls():
    logits, labels = _calibrated_logits(4000, 5, 0)
    overconfident = logits * 3.0  # the same ranking, three times too sure
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    before = reliability(view_probabilities(overconfident, 1.0), labels).ece
    after = reliability(view_probabilities(overconfident, t), labels).ece
    assert before > 0.1 and after < before / 3
    assert (view_probabilities(overconfident, t).argmax(1) == overconfident.argmax(1)).all()  # no prediction changes


def test_a_calibrated_model_keeps_temperature_one_and_a_small_ece():
    logits, labels = _calibrated_logits(4000, 4, 1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)
    assert reliability(view_probabilities(logits, 1.0), labels).ece < 0.03


def test_reliability_bins_add_up_and_the_ece_is_their_weighted_gap():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    table = reliability(probs, labels, bins=2)  # bins (0, .5], (.5, 1]: all four in the top bin
    assert table.counts == (0, 4) and table.accuracy[1] == pytest.approx(0.75)
    assert table.ece == pytest.approx(abs(0.75 - np.mean([0.95, 0.9, 0.6, 0.55])))


def test_a_tta_temperature_is_fitted_on_the_view_average():
    logits, labels = _calibrated_logits(2000, 3, 2)
    views = np.stack([logits * 2.5 + np.random.default_rng(v).normal(0, 0.01, logits.shape) for v in range(4)])
    assert fit_temperature(views, labels) == pytest.approx(2.5, rel=0.15)
