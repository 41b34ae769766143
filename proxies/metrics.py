"""Early-training metrics from a trial's raw records (plain dicts, as the training loop stores them).

Input: ``history = {"epochs": [{"epoch", "train_loss", "train_acc", "batch_losses",
"batch_grad_norms", "val_loss", "val_acc", "val_balanced_acc", ...}, ...]}``.
Output: a flat ``{name: float}`` with the stable names below; the study stores it per trial and
the composite proxy reads it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy import stats

EARLY_TRAINING_NAMES = (
    "train_loss",        # mean train loss of the final epoch
    "train_loss_epoch1",  # mean train loss of epoch 1
    "train_loss_drop",   # epoch-1 mean minus final-epoch mean (how fast it learns)
    "train_loss_cv",     # std / mean of the final epoch's batch losses
    "train_loss_slope",  # least-squares slope of batch loss over the final epoch, per batch, / its mean
    "grad_norm_mean",    # mean gradient norm over all batches
    "grad_norm_std",     # spread of the gradient norm over all batches
    "val_loss",
    "val_acc",
    "val_balanced_acc",
    "gap",               # val loss − final train loss (generalisation gap)
    "train_acc",
)
# Learning-curve signals: how fast the network learns over the whole trial, not just where it ends.
LEARNING_CURVE_NAMES = (
    "tse",               # training speed estimate: Σ over epochs of the epoch's mean batch loss (Ru et al. 2021)
    "tse_ema",           # the same, epoch e weighted γ^(E−e), γ = 0.9 (TSE-EMA: the later epochs count more)
    "val_loss_epoch1",   # validation loss after the first epoch
    "val_balanced_acc_epoch1",  # validation balanced accuracy after the first epoch
    "val_loss_slope",    # least-squares slope of validation loss per epoch (one epoch: NaN)
)
TSE_EMA_GAMMA = 0.9
SIZE_NAMES = ("log_params", "log_flops")
METRIC_NAMES = EARLY_TRAINING_NAMES + LEARNING_CURVE_NAMES + SIZE_NAMES


def early_training_metrics(history: Mapping[str, Any], params: float | None = None, flops: float | None = None) -> dict[str, float]:
    """Compute every early-training metric; missing inputs give NaN rather than an exception."""
    epochs = list(history.get("epochs", []))
    nan = float("nan")
    if not epochs:
        out = {name: nan for name in EARLY_TRAINING_NAMES + LEARNING_CURVE_NAMES}
    else:
        first, last = epochs[0], epochs[-1]
        batch_losses = np.asarray(last.get("batch_losses") or [], dtype=float)
        grads = np.asarray([g for e in epochs for g in (e.get("batch_grad_norms") or [])], dtype=float)
        loss_mean = float(batch_losses.mean()) if batch_losses.size else nan
        slope = nan
        if batch_losses.size >= 3:
            slope = float(stats.linregress(np.arange(batch_losses.size), batch_losses).slope) / loss_mean
        val_loss = _f(last.get("val_loss"))
        train_loss = _f(last.get("train_loss"))
        out = {
            "train_loss": train_loss,
            "train_loss_epoch1": _f(first.get("train_loss")),
            "train_loss_drop": _f(first.get("train_loss")) - train_loss,
            "train_loss_cv": float(batch_losses.std() / loss_mean) if batch_losses.size and loss_mean > 0 else nan,
            "train_loss_slope": slope,
            "grad_norm_mean": float(grads.mean()) if grads.size else nan,
            "grad_norm_std": float(grads.std()) if grads.size else nan,
            "val_loss": val_loss,
            "val_acc": _f(last.get("val_acc")),
            "val_balanced_acc": _f(last.get("val_balanced_acc")),
            "gap": val_loss - train_loss,
            "train_acc": _f(last.get("train_acc")),
            **learning_curve_metrics(epochs),
        }
        # Not a proxy feature (see METRIC_NAMES): what proxies.guard reads to spot a collapsed model.
        out["val_predicted_classes"] = _f(last.get("val_predicted_classes"))
    out["log_params"] = math.log10(params) if params and params > 0 else nan
    out["log_flops"] = math.log10(flops) if flops and flops > 0 else nan
    return out


def learning_curve_metrics(epochs: list[Mapping[str, Any]]) -> dict[str, float]:
    """Training-speed estimates and the validation curve's start and slope (see LEARNING_CURVE_NAMES)."""
    epoch_losses = np.array([_f(e.get("train_loss")) for e in epochs])
    n = len(epoch_losses)
    weights = TSE_EMA_GAMMA ** (n - 1 - np.arange(n))
    val_losses = np.array([_f(e.get("val_loss")) for e in epochs])
    ok = np.isfinite(val_losses)
    slope = float(np.polyfit(np.arange(n)[ok], val_losses[ok], 1)[0]) if ok.sum() >= 2 else float("nan")
    return {
        "tse": float(epoch_losses.sum()),
        "tse_ema": float((weights * epoch_losses).sum()),
        "val_loss_epoch1": _f(epochs[0].get("val_loss")),
        "val_balanced_acc_epoch1": _f(epochs[0].get("val_balanced_acc")),
        "val_loss_slope": slope,
    }


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
