"""The one weights format: progressive growth's per-trial weights, full training's and export's ``model.pt``.

One ``torch.save`` dict, loaded with ``weights_only=True`` (loading never runs code from the file)::

    {"format": "galaxy-synth-model/1", "state_dict": {...}, "arch": {...spec...},
     "preprocessing": {...PreprocessingConfig...} or None, "info": {...}}

:class:`PackagedModel` is the network with its preprocessing and probability calibration baked in:
what export traces to TorchScript and ONNX and what predict runs.

Files written before this format (a bare state dict; or full training's
``{"state_dict", "arch", "normalizer", "extra_scaler", "class_names"}``) still load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from galaxy_common import atomic_path
from synthesis.data import ExtraScaler, Normalizer, PreprocessingConfig, asinh
from synthesis.models.builder import build_model
from synthesis.models.equivariant import plain_convolutions
from synthesis.models.spec import ModelSpec, model_spec_from_dict
from synthesis.models.vote_head import VoteHead

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


class PackagedModel(nn.Module):
    """The trained network with its input preprocessing baked in: images (+ raw extras) → logits.

    8-bit images arrive as float tensors in [0, 1]; FITS fluxes arrive raw (float32) and go through
    the study's band mapping (asinh or linear, per band) here, then the training split's per-channel
    mean and std in both cases.
    """

    def __init__(self, net: nn.Module, normalizer: Normalizer, scaler: ExtraScaler, n_extra: int,
                 temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.n_extra = n_extra
        device = next(net.parameters()).device  # the buffers live beside the weights
        f32 = {"dtype": torch.float32, "device": device}
        channels = len(normalizer.mean)
        self.register_buffer("mean", torch.tensor(normalizer.mean, **f32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(normalizer.std, **f32).view(1, channels, 1, 1))
        mapping = normalizer.mapping
        self.mapping = mapping.kind if mapping is not None else "none"
        self.register_buffer("band_offset", torch.tensor(mapping.offset if mapping else [0.0] * channels, **f32).view(1, channels, 1, 1))
        self.register_buffer("band_scale", torch.tensor(mapping.scale if mapping else [1.0] * channels, **f32).view(1, channels, 1, 1))
        self.register_buffer("extra_mean", torch.tensor(scaler.mean or [0.0] * n_extra, **f32))
        self.register_buffer("extra_std", torch.tensor(scaler.std or [1.0] * n_extra, **f32))
        # calibrated logits: divided by the temperature fitted on the validation split (argmax unchanged)
        self.register_buffer("temperature", torch.tensor(float(temperature), **f32))

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        x = self._normalised(images)
        if self.n_extra == 0 or extra is None:
            return self.net(x) / self.temperature
        return self.net(x, (extra - self.extra_mean) / self.extra_std) / self.temperature

    def votes(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A vote network's calibrated class logits (as ``forward``) and its Dirichlet concentrations, from one pass."""
        x = self._normalised(images)
        if self.n_extra == 0 or extra is None:
            logits, concentrations = self.net.votes(x)
        else:
            logits, concentrations = self.net.votes(x, (extra - self.extra_mean) / self.extra_std)
        return logits / self.temperature, concentrations

    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.mapping != "none":
            x = (x - self.band_offset) / self.band_scale
            if self.mapping == "asinh":
                x = asinh(x)
        return (x - self.mean) / self.std


def fused_for_inference(model: PackagedModel) -> PackagedModel:
    """A copy of an eval-mode packaged model with each batch norm folded into the convolution before it.

    The same function up to float rounding (logits within 1e-5, tested), with no batch-norm pass: 1.2-1.5× faster
    small networks on the CPU (docs/BENCHMARKS.md §20). Networks torch.fx cannot trace are returned
    as they are (a copy), so this never fails where the plain model runs. Group convolutions become the plain
    convolutions they compute first (:func:`synthesis.models.equivariant.plain_convolutions`), then fold alike.
    """
    import copy

    from torch.fx.experimental.optimization import fuse

    fast = copy.deepcopy(model).eval()  # fuse folds running statistics: only right in eval mode
    fast.net = plain_convolutions(fast.net)
    try:
        if isinstance(getattr(fast.net, "classifier", None), VoteHead):  # keep the network's votes method
            fast.net.stem, fast.net.stages = fuse(fast.net.stem), fuse(fast.net.stages)
        else:
            fast.net = fuse(fast.net)
    except Exception:  # noqa: BLE001 — tracing fails in many ways on custom control flow; the unfused copy is right
        pass
    return fast
