"""What turns cached pixels and extra columns into network inputs: per-channel normalisation and extra-input scaling, fitted on the training split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch


@dataclass
class Normalizer:
    """Per-channel mean/std (in [0, 1] units) from the training split; maps uint8 → float."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def fit(cls, images: np.ndarray, indices: np.ndarray | None = None, chunk: int = 4096) -> Normalizer:
        """Statistics of uint8 images [N, H, W, C] (the rows ``indices``), read in chunks: a
        memory-mapped cache of 100k images is never copied whole, nor converted to float at once."""
        rows = np.arange(len(images)) if indices is None else np.asarray(indices)
        channels = images.shape[-1]
        total = np.zeros(channels)
        squares = np.zeros(channels)
        count = 0
        for start in range(0, len(rows), chunk):
            pix = np.asarray(images[rows[start:start + chunk]]).reshape(-1, channels).astype(np.float64) / 255.0
            total += pix.sum(axis=0)
            squares += (pix**2).sum(axis=0)
            count += len(pix)
        mean = total / max(count, 1)
        std = np.maximum(np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0.0)), 1e-3)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))  # type: ignore[arg-type]

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Made once per device, not per batch: on a GPU every fresh host tensor is a copy.
        cache = self.__dict__.setdefault("_on_device", {})
        if device not in cache:
            cache[device] = (torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                             torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1))
        return cache[device]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x.device)
        return (x.float() / 255.0 - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass
class ExtraScaler:
    """Standardise extra numeric inputs (z, z_err…) with training-split statistics."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, extras: np.ndarray) -> ExtraScaler:
        if extras.shape[1] == 0:
            return cls()
        return cls(extras.mean(axis=0).tolist(), np.maximum(extras.std(axis=0), 1e-6).tolist())

    def transform(self, extras: np.ndarray) -> np.ndarray:
        if not self.mean:
            return extras.astype(np.float32)
        return ((extras - np.array(self.mean)) / np.array(self.std)).astype(np.float32)


@dataclass(frozen=True)
class PreprocessingConfig:
    """Everything between a file on disk and the network's input, written once when a study is created.

    Like timm's pretrained config, one object travels: the study stores it (attrs ``preprocessing``),
    trials and full training normalise with it, every weights file carries it
    (:mod:`synthesis.models.package`), the model card prints it and ``predict`` reads it back.
    ``pixels``: how the cache stores a pixel — ``uint8`` (0-255, scaled by 1/255 before the
    per-channel mean/std) or ``float16`` (band values after ``band_mapping``, then mean/std).
    """

    image_size: int
    crop: float
    channels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra_names: tuple[str, ...] = ()
    extra_mean: tuple[float, ...] = ()
    extra_std: tuple[float, ...] = ()
    class_names: tuple[str, ...] = ()
    mirror_pairs: tuple[tuple[str, str], ...] = ()
    flips_allowed: bool = True
    pixels: str = "uint8"
    band_mapping: tuple[dict, ...] = ()

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def normalizer(self) -> Normalizer:
        return Normalizer(tuple(self.mean), tuple(self.std))

    def extra_scaler(self) -> ExtraScaler:
        return ExtraScaler(list(self.extra_mean), list(self.extra_std))

    def describe_input(self) -> str:
        """How to make an input the packaged model accepts, in words (the model card's line)."""
        crop = "the whole image (no crop)" if self.crop >= 1 else f"centre-crop {self.crop:.0%} of each side"
        scale = "scale to [0, 1]" if self.pixels == "uint8" else "map each band as band_mapping says"
        return f"{crop}, resize to {self.image_size}² (bilinear), {scale}; model.ts/model.onnx normalise inside"

    def to_dict(self) -> dict[str, Any]:
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        out["mirror_pairs"] = [list(p) for p in self.mirror_pairs]
        # the two keys studies stored before this config existed, kept so that older releases read it too
        out["normalizer"] = {"mean": list(self.mean), "std": list(self.std)}
        out["extra_scaler"] = {"mean": list(self.extra_mean), "std": list(self.extra_std)}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], **fill: Any) -> PreprocessingConfig:
        """From a stored dict; a study made before the config existed stored only ``normalizer`` and
        ``extra_scaler``: ``fill`` gives the rest (image size, crop, class names…)."""
        values = {**fill, **{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}}
        if "mean" not in values:
            values["mean"], values["std"] = data["normalizer"]["mean"], data["normalizer"]["std"]
            values["extra_mean"], values["extra_std"] = data["extra_scaler"]["mean"], data["extra_scaler"]["std"]
        values.setdefault("channels", ("R", "G", "B")[: len(values["mean"])])
        tuples = {"channels", "mean", "std", "extra_names", "extra_mean", "extra_std", "class_names", "band_mapping"}
        for k in tuples & set(values):
            values[k] = tuple(values[k])
        values["mirror_pairs"] = tuple(tuple(p) for p in values.get("mirror_pairs", ()))
        return cls(**values)
