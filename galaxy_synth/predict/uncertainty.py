"""Each galaxy's uncertainty in predict's output: ``predictive_entropy`` always, ``mutual_information`` for an
ensemble (its members' disagreement) and ``reliable`` where a threshold is known (selective classification).

Torch-free (the ONNX engine's process uses it). The threshold is the card's: the largest predictive entropy
whose kept validation galaxies had at most the target error rate (``card["selective"]``, chosen by export);
``--target-error`` picks another target on the same validation curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from galaxy_common import DataError
from synthesis.training import mutual_information, predictive_entropy


def is_ensemble(model: Any) -> bool:
    """Whether a model folder (its card) is an ensemble, whose engines also give the members' probabilities."""
    return bool(model.card.get("ensemble"))


def member_weights(model: Any) -> np.ndarray:
    return np.array([m["weight"] for m in model.card["ensemble"]["members"]], dtype=np.float64)


def combine_member_views(member_views: np.ndarray, weights: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """From the members' probabilities on each view [V, M, N, K]: the ensemble's calibrated probabilities
    (softmax(log(Σ w p) / T) per view, averaged over the views) [N, K] and each member's, view-averaged [M, N, K]."""
    mean = np.einsum("m,vmnk->vnk", np.asarray(weights, dtype=np.float64), member_views.astype(np.float64))
    logits = np.log(np.clip(mean, 1e-12, None)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=-1, keepdims=True)).mean(axis=0).astype(np.float32), member_views.mean(axis=0).astype(np.float32)


def uncertainty_columns(table: pd.DataFrame, probabilities: np.ndarray, members: np.ndarray | None,
                        weights: np.ndarray | None) -> None:
    """Add ``predictive_entropy`` (and, with members [M, N, K], ``mutual_information``) to ``table``; NaN rows stay NaN."""
    table["predictive_entropy"] = predictive_entropy(probabilities)
    table.loc[np.isnan(probabilities).any(axis=1), "predictive_entropy"] = np.nan
    if members is not None:
        table["mutual_information"] = mutual_information(members, weights)
        table.loc[np.isnan(probabilities).any(axis=1), "mutual_information"] = np.nan


def reliability_threshold(model: Any, target_error: float | None) -> float | None:
    """The entropy threshold for the ``reliable`` column: the card's (export's target) or, for ``target_error``,
    read off the card's validation curve; None where the card has none and no target is asked for."""
    selective = model.card.get("selective")
    if target_error is None:  # the card's; null where no threshold met export's target: nothing is reliable
        return None if not selective else float(selective["entropy_threshold"] if selective["entropy_threshold"] is not None else "-inf")
    if not 0.0 <= target_error <= 1.0:
        raise DataError("--target-error must lie in [0, 1]")
    if not selective:
        raise DataError(f"--target-error: {model.folder} has no validation curve in its card (export it again)")
    entropy, error = np.asarray(selective["validation_curve"]["entropy"]), np.asarray(selective["validation_curve"]["error"])
    allowed = np.flatnonzero(error <= target_error)
    return float(entropy[allowed[-1]]) if len(allowed) else float("-inf")


def add_reliable(table: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """``reliable``: the prediction is kept (its entropy within the threshold); False for unreadable rows."""
    if threshold is not None and "predictive_entropy" in table:
        table["reliable"] = (table["predictive_entropy"] <= threshold).to_numpy() & (table["status"] == "ok").to_numpy()
    return table


NEEDS_SINGLE = "--embeddings needs a single model folder (an ensemble has no one representation): use a member's rank folder"


def classify_with_members(network: Any, inputs: np.ndarray, extras: np.ndarray, ok: np.ndarray, tta: bool = False,
                          precision: str = "fp32", embeddings: bool = False
                          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`~galaxy_synth.predict.embeddings.classify_and_embed`, and for an ensemble also its members'
    probabilities [M, N, K] (NaN where ``ok`` is False; None for a single model)."""
    from galaxy_synth.predict.embeddings import classify_and_embed

    if not is_ensemble(network):
        return (*classify_and_embed(network, inputs, extras, ok, tta, precision, embeddings), None)
    if embeddings:
        raise DataError(NEEDS_SINGLE)
    k = len(network.class_names)
    probs = np.full((len(ok), k), np.nan, np.float32)
    members = np.full((len(member_weights(network)), len(ok), k), np.nan, np.float32)
    if ok.any():
        probs[ok], members[:, ok] = network.probabilities_with_members(inputs[ok], extras[ok], tta, precision=precision)
    return probs, None, members


def add_uncertainty(table: pd.DataFrame, network: Any, probabilities: np.ndarray, members: np.ndarray | None) -> None:
    """:func:`uncertainty_columns` with the network's member weights."""
    uncertainty_columns(table, probabilities, members, member_weights(network) if members is not None else None)
