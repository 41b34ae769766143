"""The torch network of an exported model folder: loaded, its inputs read, its (test-time augmented) probabilities.

The model is rebuilt from ``arch.json`` + ``model.pt`` (``weights_only=True``: loading never
runs code from the file) and the card's normalisation, i.e. exactly what ``model.ts`` contains.
Images get the card's centre-crop and resize. ``tta=True`` averages the softmax over the
dihedral group — 4 rotations × optional mirror flip — and, as in training, a flip swaps the
probabilities of mirror-image classes (clockwise ↔ anticlockwise spirals); where a chiral class
has no mirror partner, flips are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from galaxy_synth.predict.model_folder import ModelFolder, read_model_folder
from galaxy_synth.predict.uncertainty import combine_member_views, is_ensemble, member_weights
from synthesis.data import decode_image
from synthesis.data import FitsLayout, decode_fits
from synthesis import DataError
from synthesis.hardware import autocast
from synthesis.models import EnsembleModel, PackagedModel, fused_for_inference, load_ensemble, load_model
from synthesis.training import view_logits, view_of


@dataclass
class LoadedModel(ModelFolder):
    """A model folder with its network loaded (``model``: what ``model.ts`` computes)."""

    model: PackagedModel | EnsembleModel

    @cached_property
    def inference_model(self) -> PackagedModel:
        """What predict runs: ``model`` with its batch norms folded into the convolutions (same outputs up to
        rounding, faster); ``model`` itself stays as trained (its parameters, its modules)."""
        return self.model.fused() if isinstance(self.model, EnsembleModel) else fused_for_inference(self.model)

    def probabilities(self, images: np.ndarray, extras: np.ndarray, tta: bool = False, precision: str = "fp32") -> np.ndarray:
        """:func:`predict_probabilities` (the engine interface :class:`galaxy_synth.predict.onnx_engine.OnnxModel` shares)."""
        return self.probabilities_with_members(images, extras, tta, precision)[0]

    def probabilities_with_members(self, images: np.ndarray, extras: np.ndarray, tta: bool = False,
                                   precision: str = "fp32") -> tuple[np.ndarray, np.ndarray | None]:
        """The probabilities and, for an ensemble, each member's [M, N, K] (None for a single model)."""
        if is_ensemble(self):
            return ensemble_probabilities(self, images, extras, tta, precision=precision)
        return predict_probabilities(self, images, extras, tta, precision=precision), None

    def concentrations(self, images: np.ndarray, extras: np.ndarray, precision: str = "fp32") -> np.ndarray:
        """A vote model's Dirichlet concentrations [N, answers] (:func:`predict_concentrations`)."""
        return predict_concentrations(self, images, extras, precision=precision)


def load_model_dir(folder: str | Path | ModelFolder) -> LoadedModel:
    """Load an exported model folder (or the :class:`ModelFolder` already read); any missing or corrupt piece is
    one DataError naming it."""
    header = folder if isinstance(folder, ModelFolder) else read_model_folder(folder)
    folder = header.folder
    try:
        if is_ensemble(header):
            return _loaded_ensemble(header)
        net, _, _ = load_model(folder / "model.pt", header.spec)  # the one weights format, or an older bare state dict
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        raise DataError(f"model.pt in {folder} does not match its arch.json: {str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:  # unpickling errors come in many types; none may pass silently
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"corrupt model.pt in {folder}: {first[:200]}") from None
    temperature = (header.card.get("probability_calibration") or {}).get("temperature", 1.0)  # older cards: raw softmax
    packaged = PackagedModel(net, header.normalizer(), header.extra_scaler(), header.spec.n_extra, temperature).eval()
    return LoadedModel(header.folder, header.card, header.spec, header.config, packaged)


@torch.inference_mode()
def predict_probabilities(loaded: LoadedModel, images: np.ndarray, extras: np.ndarray, tta: bool = False,
                          batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Calibrated probabilities [N, classes] for model inputs [N, S, S, C] (:func:`read_inputs`).

    The packaged model divides its logits by the card's temperature; with ``tta`` the views' logits are
    rescaled to the temperature fitted for the TTA average (the card's ``temperature_tta``). ``precision``
    "bf16" runs the network under bf16 autocast (the softmax in fp32).
    """
    views, perm, rescale = loaded.test_time_views(tta)
    model = loaded.inference_model
    out = []
    for start in range(0, len(images), batch_size):
        # channels_last, as in training: oneDNN's convolutions are faster on it (the same values either way)
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).float().permute(0, 3, 1, 2)
        e = torch.from_numpy(np.array(extras[start:start + batch_size], dtype=np.float32))
        forward = (lambda v, e=e: model(v, e)) if loaded.spec.n_extra else model
        with autocast(x.device, precision):
            logits = view_logits(forward, x, views, perm) * rescale
        out.append(torch.softmax(logits, dim=-1).mean(dim=0).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(perm)), np.float32)


@torch.inference_mode()
def predict_concentrations(loaded: LoadedModel, images: np.ndarray, extras: np.ndarray, batch_size: int = 64,
                           precision: str = "fp32") -> np.ndarray:
    """A vote model's (``--schema``) Dirichlet concentrations [N, answers] for model inputs [N, S, S, C]: what
    ``model.ts``'s ``votes`` method gives, on the images as they are (no test-time views)."""
    model = loaded.inference_model
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).float().permute(0, 3, 1, 2)
        e = torch.from_numpy(np.array(extras[start:start + batch_size], dtype=np.float32)) if loaded.spec.n_extra else None
        with autocast(x.device, precision):
            out.append(model.votes(x, e)[1].float().numpy())
    return np.concatenate(out) if out else np.zeros((0, loaded.spec.outputs), np.float32)


@torch.inference_mode()
def ensemble_probabilities(loaded: LoadedModel, images: np.ndarray, extras: np.ndarray, tta: bool = False,
                           batch_size: int = 64, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """An ensemble's calibrated probabilities [N, K] and its members' [M, N, K] (each averaged over the views)."""
    views, perm, _ = loaded.test_time_views(tta)
    model, weights = loaded.inference_model, member_weights(loaded)
    temperature = float(loaded.card["probability_calibration"]["temperature"])
    probs, members = [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).float().permute(0, 3, 1, 2)
        e = torch.from_numpy(np.array(extras[start:start + batch_size], dtype=np.float32)) if loaded.spec.n_extra else None
        per_view = []
        with autocast(x.device, precision):
            for view in views:
                got = model.member_probabilities(view_of(x, view), e).float()
                per_view.append((got[..., list(perm)] if view[1] else got).numpy())
        p, m = combine_member_views(np.stack(per_view), weights, temperature)
        probs.append(p)
        members.append(m)
    k = len(perm)
    return (np.concatenate(probs) if probs else np.zeros((0, k), np.float32),
            np.concatenate(members, axis=1) if members else np.zeros((len(weights), 0, k), np.float32))


def _loaded_ensemble(header: ModelFolder) -> LoadedModel:
    ensemble = load_ensemble(header.folder / "model.pt", header.normalizer(), header.extra_scaler())
    return LoadedModel(header.folder, header.card, header.spec, header.config, ensemble)


def read_inputs(loaded: LoadedModel, rows: Sequence[Sequence[str]]) -> np.ndarray:
    """What the packaged model takes, float32 [N, S, S, C]: 8-bit images decoded, cropped, resized and scaled to
    [0, 1]; FITS rows (a file, or one per band) read as the training catalogue was, raw fluxes."""
    size, crop = loaded.config.image_size, loaded.config.crop
    if loaded.is_fits:
        layout = FitsLayout.from_dict(loaded.config.fits or {})
        return np.stack([decode_fits(list(row), layout, size, crop)[0] for row in rows])
    return np.stack([decode_image(row[0], size, crop) for row in rows]).astype(np.float32) / 255.0
