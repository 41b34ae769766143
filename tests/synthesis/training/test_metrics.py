import numpy as np
import pytest

from synthesis.training.metrics import classification_metrics


def test_metrics_from_a_known_confusion_matrix():
    cm = np.array([[8, 2], [1, 1]])  # rows = truth
    acc, bal, f1 = classification_metrics(cm)
    assert acc == pytest.approx(9 / 12)
    assert bal == pytest.approx((0.8 + 0.5) / 2)
    f1_0 = 2 * (8 / 9) * 0.8 / ((8 / 9) + 0.8)
    f1_1 = 2 * (1 / 3) * 0.5 / ((1 / 3) + 0.5)
    assert f1 == pytest.approx((f1_0 + f1_1) / 2)
