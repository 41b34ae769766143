"""Entropy, mutual information, greedy ensemble selection, the reliability threshold and risk–coverage."""

import numpy as np
import pytest

from synthesis.training.uncertainty import (
    entropy_threshold,
    greedy_selection,
    log_loss,
    mutual_information,
    plot_risk_coverage,
    predictive_entropy,
    risk_coverage,
)


def test_entropy_and_mutual_information_equal_their_formulas():
    members = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]])
    mean = members.mean(0)
    h = lambda p: -(p * np.log(p)).sum(-1)  # noqa: E731
    assert predictive_entropy(mean) == pytest.approx(h(mean))
    assert predictive_entropy(np.array([1.0, 0.0])) == 0.0  # 0 log 0 = 0
    assert mutual_information(members) == pytest.approx(h(mean) - (h(members[0]) + h(members[1])) / 2)
    assert mutual_information(members)[1] == pytest.approx(0.0)  # agreeing members: no disagreement
    weighted = mutual_information(members, np.array([3.0, 1.0]))
    wmean = 0.75 * members[0] + 0.25 * members[1]
    assert weighted == pytest.approx(h(wmean) - 0.75 * h(members[0]) - 0.25 * h(members[1]))


def _candidates():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    onehot = np.eye(3)[labels]
    noisy = [np.clip(onehot * 0.6 + rng.dirichlet(np.ones(3), 400) * 0.4, 1e-6, None) for _ in range(3)]
    useless = np.full((400, 3), 1 / 3)
    return np.stack([*noisy, useless]), labels


def test_greedy_selection_lowers_validation_log_loss_and_never_picks_a_useless_member():
    candidates, labels = _candidates()
    selection = greedy_selection(candidates, labels, max_picks=5)
    assert 3 not in selection.counts  # the uniform candidate helps no average
    assert list(selection.losses) == sorted(selection.losses, reverse=True)
    assert selection.losses[-1] < min(log_loss(c, labels) for c in candidates)
    average = np.tensordot(selection.weights(), candidates[selection.members], axes=1)
    assert log_loss(average, labels) == pytest.approx(selection.losses[-1])


def test_greedy_selection_picks_with_replacement():
    labels = np.array([0, 0, 0, 1])
    strong = np.array([[0.9, 0.1]] * 4)  # right three times, confidently wrong once
    weak = np.array([[0.4, 0.6]] * 4)  # tempers the wrong one; best mixed 2:1 with the strong one
    selection = greedy_selection(np.stack([strong, weak]), labels, max_picks=5)
    assert selection.counts == {0: 2, 1: 1}
    assert selection.weights() == pytest.approx([2 / 3, 1 / 3])


def test_greedy_selection_stops_when_no_member_helps():
    labels = np.array([0, 1])
    perfect = np.array([[0.99, 0.01], [0.01, 0.99]])
    selection = greedy_selection(np.stack([perfect, np.full((2, 2), 0.5)]), labels, max_picks=5)
    assert selection.counts == {0: 1} and len(selection.losses) == 1


def test_risk_coverage_and_aurc_on_a_hand_made_case():
    uncertainty = np.array([0.1, 0.2, 0.3, 0.4])
    correct = np.array([True, False, True, False])
    coverage, risk, aurc = risk_coverage(uncertainty, correct)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    assert aurc == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    _, tied_risk, _ = risk_coverage(np.array([0.1, 0.1, 0.3]), np.array([True, False, True]))
    assert tied_risk == pytest.approx([0.5, 1 / 3])  # tied galaxies are kept or set aside together


def test_entropy_threshold_meets_the_target_error():
    rng = np.random.default_rng(1)
    entropy = rng.random(1000)
    correct = rng.random(1000) > entropy * 0.5  # the less certain, the more often wrong
    threshold = entropy_threshold(entropy, correct, 0.05)
    kept = entropy <= threshold
    assert kept.any() and (~correct[kept]).mean() <= 0.05
    assert (~correct[entropy <= np.sort(entropy)[kept.sum()]]).mean() > 0.05 or kept.all()  # the largest such threshold
    assert entropy_threshold(np.array([0.1]), np.array([False]), 0.05) == float("-inf")


def test_the_risk_coverage_figure_draws_every_curve_with_its_aurc(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **k: labels.extend(ax.get_legend_handles_labels()[1]))
    curves = {"ensemble": risk_coverage(np.array([0.1, 0.2, 0.3]), np.array([True, True, False])),
              "trial 4": risk_coverage(np.array([0.1, 0.2, 0.3]), np.array([False, True, True]))}
    plot_risk_coverage(curves, tmp_path / "rc.png")
    assert labels == [f"ensemble (AURC {curves['ensemble'][2]:.3f})", f"trial 4 (AURC {curves['trial 4'][2]:.3f})"]
    assert (tmp_path / "rc.png").stat().st_size > 1000
