"""What turns cached pixels and extra columns into network inputs: per-channel normalisation and extra-input scaling, fitted on the training split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
