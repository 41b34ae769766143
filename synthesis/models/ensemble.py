"""An ensemble of packaged models as one network: the weighted average of the members' calibrated probabilities.

``forward`` returns calibrated logits like :class:`~synthesis.models.package.PackagedModel`'s — the log of the
weighted mean of the members' softmax (each member divided by its own temperature), divided by the temperature
fitted for the average — so its softmax is the ensemble's probability and every engine that runs a single model
runs it. ``member_probabilities`` gives each member's [M, N, K] (what the members' disagreement is measured on);
:class:`WithMemberProbabilities` makes it ONNX's second output.

Weights file (``model.pt`` of ``models/ensemble/``; loaded with ``weights_only=True``)::

    {"format": "galaxy-synth-ensemble/1", "members": [{"state_dict", "arch", "temperature", "weight", "info"}, ...],
     "preprocessing": {...}, "temperature": T}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from galaxy_common import atomic_path
from synthesis.data import ExtraScaler, Normalizer, PreprocessingConfig
from synthesis.models.builder import build_model
from synthesis.models.package import PackagedModel, fused_for_inference
from synthesis.models.spec import ModelSpec, model_spec_from_dict

ENSEMBLE_FORMAT = "galaxy-synth-ensemble/1"


class EnsembleModel(nn.Module):
    """Packaged members (each with its own preprocessing and temperature) → the calibrated ensemble's logits."""

    def __init__(self, members: Sequence[PackagedModel], weights: Sequence[float], temperature: float = 1.0) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.n_extra = members[0].n_extra
        total = float(sum(weights))
        self.register_buffer("weights", torch.tensor([float(w) / total for w in weights], dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))

    def member_probabilities(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Each member's calibrated probabilities, [M, N, K]."""
        return torch.stack([torch.softmax(m(images, extra).float(), dim=-1) for m in self.members])

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        mean = (self.member_probabilities(images, extra) * self.weights.view(-1, 1, 1)).sum(dim=0)
        return torch.log(mean.clamp_min(1e-12)) / self.temperature

    def fused(self) -> EnsembleModel:
        """A copy with each member's batch norms folded (:func:`fused_for_inference`)."""
        return EnsembleModel([fused_for_inference(m) for m in self.members], self.weights.tolist(),
                             float(self.temperature)).eval()


class WithMemberProbabilities(nn.Module):
    """``(logits, member probabilities [N, M, K])``: what ``model.onnx`` of an ensemble outputs (batch first)."""

    def __init__(self, ensemble: EnsembleModel) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        members = self.ensemble.member_probabilities(images, extra)
        mean = (members * self.ensemble.weights.view(-1, 1, 1)).sum(dim=0)
        return torch.log(mean.clamp_min(1e-12)) / self.ensemble.temperature, members.transpose(0, 1)


def save_ensemble(path: str | Path, nets: Sequence[nn.Module], specs: Sequence[ModelSpec], temperatures: Sequence[float],
                  weights: Sequence[float], preprocessing: PreprocessingConfig, temperature: float,
                  infos: Sequence[dict[str, Any]]) -> Path:
    """The ensemble's weights file, atomically (the members' weights from the CPU)."""
    members = [{"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "arch": spec.to_dict(),
                "temperature": float(t), "weight": float(w), "info": dict(info)}
               for net, spec, t, w, info in zip(nets, specs, temperatures, weights, infos)]
    body = {"format": ENSEMBLE_FORMAT, "members": members, "preprocessing": preprocessing.to_dict(),
            "temperature": float(temperature)}
    with atomic_path(path) as tmp:
        torch.save(body, tmp)
    return Path(path)


def load_ensemble(path: str | Path, normalizer: Normalizer, scaler: ExtraScaler) -> EnsembleModel:
    """The :class:`EnsembleModel` a weights file holds (members packaged with the shared preprocessing)."""
    body = torch.load(path, map_location="cpu", weights_only=True)
    if body.get("format") != ENSEMBLE_FORMAT:
        raise ValueError(f"{path} is not an ensemble ({body.get('format')!r})")
    members = []
    for member in body["members"]:
        spec = model_spec_from_dict(member["arch"])
        net = build_model(spec)
        net.load_state_dict(member["state_dict"])
        members.append(PackagedModel(net, normalizer, scaler, spec.n_extra, member["temperature"]).eval())
    return EnsembleModel(members, [m["weight"] for m in body["members"]], body["temperature"]).eval()
