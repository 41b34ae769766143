"""An exported model folder read without its weights: the card, the architecture and the preprocessing config.

Everything predict must know before the network exists — which files to read, their crop and size, the
classes, the extra inputs, how costly the network is — comes from ``card.json`` and ``arch.json``. Reading
them needs no torch (importing it takes seconds), so a catalogue run checks the folder, starts decoding
and only then loads the weights (:func:`galaxy_synth.predict.network.load_model_dir`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galaxy_common import DataError
from synthesis.data import ExtraScaler, Normalizer, PreprocessingConfig
from synthesis.models import ArchSpec, model_spec_from_dict
from synthesis.training import dihedral_views, mirror_permutation

MODEL_FILES = ("model.pt", "arch.json", "card.json")  # what `predict` needs; model.ts/onnx are for other tools


@dataclass
class ModelFolder:
    """What an exported model folder says about its network, before the weights are read."""

    folder: Path
    card: dict[str, Any]
    spec: ArchSpec
    config: PreprocessingConfig

    @property
    def is_fits(self) -> bool:
        return self.config.pixels != "uint8"

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def extra_names(self) -> list[str]:
        return list(self.card["extra_inputs"]["names"])

    @property
    def flops_per_image(self) -> float:
        return float(self.card.get("flops_per_image", 0))

    def test_time_views(self, tta: bool) -> tuple[list[tuple[int, bool]], list[int], float]:
        """What either engine averages over: the views (all 8, the 4 rotations where flips are not allowed, or the
        image itself), the class order of a mirrored view's outputs, and the factor that turns the card's
        calibrated logits into the TTA average's calibration."""
        views = dihedral_views(self.card.get("flips_allowed", True)) if tta else [(0, False)]
        perm = mirror_permutation(self.class_names, self.card.get("mirror_pairs", []))
        calibration = self.card.get("probability_calibration") or {}
        rescale = calibration.get("temperature", 1.0) / calibration.get("temperature_tta", 1.0) if tta else 1.0
        return views, perm, rescale

    def normalizer(self) -> Normalizer:
        return self.config.normalizer()

    def extra_scaler(self) -> ExtraScaler:
        return ExtraScaler(list(self.card["extra_inputs"]["mean"]), list(self.card["extra_inputs"]["std"]))


def read_model_folder(folder: str | Path) -> ModelFolder:
    """The folder's card, architecture and preprocessing; any missing or corrupt piece is one DataError naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"model folder not found: {folder}")
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder} is not a complete exported model: {missing[0]} is missing (re-run galaxy-synth export)")
    try:
        card = json.loads((folder / "card.json").read_text())
        spec = model_spec_from_dict(json.loads((folder / "arch.json").read_text()))
        if card["input"].get("config"):  # cards since the one preprocessing config: it says everything
            config = PreprocessingConfig.from_dict(card["input"]["config"])
        else:  # older cards: 8-bit RGB, the normalisation and crop beside
            norm = card["input"]["normalisation"]
            config = PreprocessingConfig(image_size=spec.image_size, crop=float(card["input"]["crop_fraction"]),
                                         channels=("R", "G", "B"), mean=tuple(norm["mean"]), std=tuple(norm["std"]))
        header = ModelFolder(folder, card, spec, config)
        header.normalizer(), header.extra_scaler(), card["class_names"], card["input"]["crop_fraction"]  # noqa: B018 — required keys
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"corrupt card.json or arch.json in {folder}: {type(exc).__name__}: {exc}") from None
    return header
