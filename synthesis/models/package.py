"""The one weights format: progressive growth's per-trial weights, full training's and export's ``model.pt``.

One ``torch.save`` dict, loaded with ``weights_only=True`` (loading never runs code from the file)::

    {"format": "galaxy-synth-model/1", "state_dict": {...}, "arch": {...spec...},
     "preprocessing": {...PreprocessingConfig...} or None, "info": {...}}

Files written before this format (a bare state dict; or full training's
``{"state_dict", "arch", "normalizer", "extra_scaler", "class_names"}``) still load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from galaxy_common.files import atomic_path
from synthesis.data.preprocessing import PreprocessingConfig
from synthesis.models.builder import build_model
from synthesis.models.spec import ModelSpec, model_spec_from_dict

WEIGHTS_FORMAT = "galaxy-synth-model/1"


def save_model(path: str | Path, model: nn.Module, spec: ModelSpec, preprocessing: PreprocessingConfig | None,
               **info: Any) -> Path:
    """Write the weights (from the CPU), the spec and the preprocessing atomically."""
    body = {"format": WEIGHTS_FORMAT, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "arch": spec.to_dict(), "preprocessing": preprocessing.to_dict() if preprocessing else None, "info": info}
    with atomic_path(path) as tmp:
        torch.save(body, tmp)
    return Path(path)


def load_model(path: str | Path, spec: ModelSpec | None = None) -> tuple[nn.Module, ModelSpec, PreprocessingConfig | None]:
    """The model a weights file holds, its spec and preprocessing (None where an old file did not keep it).

    ``spec`` is needed only for a bare state dict (the oldest files), which does not say what it is.
    """
    body = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" not in body:  # a bare state dict
        if spec is None:
            raise ValueError(f"{path} holds bare weights: the architecture must be given")
        state, preprocessing = body, None
    else:
        spec = model_spec_from_dict(body["arch"])
        state = body["state_dict"]
        stored = body.get("preprocessing")
        preprocessing = PreprocessingConfig.from_dict(stored) if stored else None
    model = build_model(spec)
    model.load_state_dict(state)
    return model, spec, preprocessing
