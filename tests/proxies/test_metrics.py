import math

import numpy as np
import pytest

from proxies.metrics import METRIC_NAMES, early_training_metrics

HISTORY = {"epochs": [
    {"epoch": 1, "train_loss": 1.5, "train_acc": 0.4, "batch_losses": [1.7, 1.5, 1.3], "batch_grad_norms": [2.0, 3.0, 4.0],
     "val_loss": 1.4, "val_acc": 0.45, "val_balanced_acc": 0.3},
    {"epoch": 2, "train_loss": 1.0, "train_acc": 0.6, "batch_losses": [1.2, 1.0, 0.8], "batch_grad_norms": [1.0, 1.0, 1.0],
     "val_loss": 1.1, "val_acc": 0.6, "val_balanced_acc": 0.5},
]}


def test_every_metric_from_a_known_history():
    m = early_training_metrics(HISTORY, params=1000, flops=1e6)
    assert set(m) == set(METRIC_NAMES) | {"val_predicted_classes"}
    assert m["train_loss"] == 1.0 and m["train_loss_epoch1"] == 1.5
    assert m["train_loss_drop"] == pytest.approx(0.5)
    assert m["train_loss_cv"] == pytest.approx(np.std([1.2, 1.0, 0.8]) / 1.0)
    assert m["train_loss_slope"] == pytest.approx(-0.2)  # −0.2 per batch, relative to a mean of 1.0
    assert m["grad_norm_mean"] == pytest.approx(2.0)
    assert m["grad_norm_std"] == pytest.approx(np.std([2, 3, 4, 1, 1, 1]))
    assert m["gap"] == pytest.approx(0.1)
    assert (m["val_acc"], m["val_balanced_acc"], m["train_acc"], m["val_loss"]) == (0.6, 0.5, 0.6, 1.1)
    assert m["log_params"] == pytest.approx(3.0) and m["log_flops"] == pytest.approx(6.0)


def test_learning_curve_signals_from_a_known_history():
    m = early_training_metrics(HISTORY)
    assert m["tse"] == pytest.approx(1.5 + 1.0)  # Σ of the epochs' mean training losses
    assert m["tse_ema"] == pytest.approx(0.9 * 1.5 + 1.0)  # the last epoch weighs 1, the one before 0.9
    assert m["val_loss_epoch1"] == 1.4 and m["val_balanced_acc_epoch1"] == 0.3
    assert m["val_loss_slope"] == pytest.approx(-0.3)  # 1.4 → 1.1 in one epoch
    three = {"epochs": HISTORY["epochs"] + [{**HISTORY["epochs"][1], "epoch": 3, "train_loss": 0.8, "val_loss": 1.2}]}
    m3 = early_training_metrics(three)
    assert m3["tse_ema"] == pytest.approx(0.81 * 1.5 + 0.9 * 1.0 + 0.8)
    assert m3["val_loss_slope"] == pytest.approx(np.polyfit([0, 1, 2], [1.4, 1.1, 1.2], 1)[0])
    one = early_training_metrics({"epochs": HISTORY["epochs"][:1]})
    assert math.isnan(one["val_loss_slope"]) and one["tse"] == 1.5


def test_missing_history_gives_nan_not_an_exception():
    m = early_training_metrics({})
    assert all(math.isnan(v) for v in m.values())
