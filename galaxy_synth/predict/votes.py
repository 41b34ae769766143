"""predict's columns for a model trained on Galaxy Zoo votes (``synth --schema``), named as the published
catalogues name them: ``{question}_{answer}_fraction``, the predicted vote fraction (the Dirichlet mean, each
question's summing to 1), and ``{question}_{answer}_dirichlet``, the Dirichlet concentration (its size says how
sure the model is: the fraction's spread shrinks as the question's concentrations grow).

The model card's ``votes`` (:func:`galaxy_synth.export.card.vote_fields`) names the questions and answers; the
concentrations come from the engine (``LoadedModel.concentrations``: ``PackagedModel.votes`` in torch;
``OnnxModel.concentrations``: ``model.onnx``'s second output), from the images as given: with ``--tta`` only the
class probabilities average over views (a flip would swap mirror-image answers the schema does not pair).
An ensemble's card carries no concentrations: it writes the class columns only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from galaxy_synth.predict.uncertainty import is_ensemble


def vote_answers(card: dict[str, Any]) -> list[list[str]]:
    """Each question's ``{question}_{answer}`` names, in the head's order (empty for a classifier's card)."""
    schema = (card.get("votes") or {}).get("schema") or {}
    return [[f"{q['name']}_{a}" for a in q["answers"]] for q in schema.get("question", [])]


def vote_columns(card: dict[str, Any], concentrations: np.ndarray) -> dict[str, np.ndarray]:
    """The fraction and concentration columns of concentrations [N, answers] (NaN rows stay NaN)."""
    columns: dict[str, np.ndarray] = {}
    start = 0
    for names in vote_answers(card):
        alpha = concentrations[:, start:start + len(names)]
        fractions = alpha / alpha.sum(axis=1, keepdims=True)
        for k, name in enumerate(names):
            columns[f"{name}_fraction"] = fractions[:, k]
        start += len(names)
    start = 0
    for names in vote_answers(card):
        for k, name in enumerate(names):
            columns[f"{name}_dirichlet"] = concentrations[:, start + k]
        start += len(names)
    return columns


def add_vote_columns(table: pd.DataFrame, network: Any, inputs: np.ndarray, extras: np.ndarray, ok: np.ndarray,
                     precision: str = "fp32") -> None:
    """A vote model's columns added to a chunk's table in place (NaN where the image could not be read); a
    classifier's or an ensemble's table is left as it is."""
    answers = vote_answers(network.card)
    if not answers or is_ensemble(network):
        return
    concentrations = np.full((len(ok), sum(map(len, answers))), np.nan, np.float32)
    if ok.any():
        concentrations[ok] = network.concentrations(inputs[ok], extras[ok], precision=precision)
    for name, values in vote_columns(network.card, concentrations).items():
        table[name] = values
