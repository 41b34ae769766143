"""predict's uncertainty columns: the ensemble's view-averaged probabilities, the reliability threshold a card or
--target-error gives, and the `reliable` flag (an output begun before these columns: tests/galaxy_synth/predict/test_catalogue.py)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from galaxy_common import DataError
from galaxy_synth.export.ensemble_card import selective_classification
from galaxy_synth.predict.uncertainty import (
    add_reliable,
    combine_member_views,
    reliability_threshold,
    uncertainty_columns,
)


def test_member_views_combine_into_the_calibrated_average_over_views():
    rng = np.random.default_rng(0)
    views = rng.dirichlet(np.ones(3), size=(2, 2, 4))  # [V, M, N, K]
    weights, t = np.array([0.75, 0.25]), 1.4
    probs, members = combine_member_views(views, weights, t)
    per_view = [softmax(np.log(np.tensordot(weights, v, axes=1)) / t, axis=1) for v in views]
    assert probs == pytest.approx(np.mean(per_view, axis=0), abs=1e-6)
    assert members == pytest.approx(views.mean(axis=0), abs=1e-6)


def test_uncertainty_columns_leave_unreadable_rows_nan():
    table = pd.DataFrame({"status": ["ok", "unreadable"]})
    probs = np.array([[0.5, 0.5], [np.nan, np.nan]])
    members = np.array([[[0.9, 0.1], [np.nan, np.nan]], [[0.1, 0.9], [np.nan, np.nan]]])
    uncertainty_columns(table, probs, members, np.array([0.5, 0.5]))
    assert table["predictive_entropy"][0] == pytest.approx(np.log(2)) and np.isnan(table["predictive_entropy"][1])
    assert table["mutual_information"][0] == pytest.approx(np.log(2) + 0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    assert np.isnan(table["mutual_information"][1])


def _validation(n=2000, seed=2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    sharp = rng.random(n) * 4
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += sharp  # the sharper, the more often right
    return softmax(logits, axis=1), labels


def test_the_reliable_flag_meets_the_target_error_on_the_validation_split():
    probs, labels = _validation()
    selective = selective_classification(probs, labels, 0.05)
    model = SimpleNamespace(card={"selective": selective}, folder=Path("m"))
    entropy = -(probs * np.log(probs)).sum(1)
    correct = probs.argmax(1) == labels
    for target in (None, 0.05, 0.2):
        threshold = reliability_threshold(model, target)
        table = add_reliable(pd.DataFrame({"status": ["ok"] * len(probs), "predictive_entropy": entropy}), threshold)
        kept = table["reliable"].to_numpy()
        assert 0 < kept.sum() < len(kept) and (~correct[kept]).mean() <= (target or 0.05) + 1e-9
    assert selective["validation_coverage"] == pytest.approx((entropy <= selective["entropy_threshold"]).mean())
    with pytest.raises(DataError, match="validation curve"):
        reliability_threshold(SimpleNamespace(card={}, folder=Path("m")), 0.05)
    assert reliability_threshold(SimpleNamespace(card={}, folder=Path("m")), None) is None  # no flag, no column
    nothing = SimpleNamespace(card={"selective": {**selective, "entropy_threshold": None}}, folder=Path("m"))
    assert reliability_threshold(nothing, None) == float("-inf")  # export's target met by no galaxy: none reliable
