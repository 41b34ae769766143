"""Training-time augmentation on batched tensors: the dihedral group D4 and light noise.

Galaxies have no preferred orientation, so all 8 rotations/reflections are valid views — with
one exception: a reflection turns a clockwise spiral into an anticlockwise one. Our choice:
**a flip swaps the labels of mirror-image classes** (found by name, see
:func:`synthesis.data.find_mirror_pairs`), which keeps flips and doubles the chiral classes'
effective data. If a chiral class has no partner (e.g. ``spiral_acw`` was dropped), flips are
turned off and only the 4 rotations are used. Validation and test data are never augmented.
"""

from __future__ import annotations

from typing import Sequence

import torch


class DihedralAugment:
    """Per-sample random element of D4 (+ Gaussian noise), label-aware for mirror pairs."""

    def __init__(self, num_classes: int, mirror_pairs: Sequence[tuple[int, int]] = (), allow_flips: bool = True, noise_std: float = 0.0) -> None:
        self.allow_flips = allow_flips
        self.noise_std = noise_std
        swap = torch.arange(num_classes)
        for a, b in mirror_pairs:
            swap[a], swap[b] = b, a
        self.flip_label = swap
        self._noise_bank: torch.Tensor | None = None

    def _noise(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # Drawing fresh Gaussian noise for every batch cost ~5 ms per 64 images on a CPU; a bank of
        # 256 noise images drawn once, picked per sample and rolled by a random offset, is nearly free.
        n, c, h, w = like.shape
        if self._noise_bank is None or self._noise_bank.shape[1:] != (c, h, w):
            self._noise_bank = torch.randn((256, c, h, w), generator=generator).to(like.device)
        pick = torch.randint(0, 256, (n,), generator=generator).to(like.device)
        shift = [int(v) for v in torch.randint(0, min(h, w), (2,), generator=generator)]
        return torch.roll(self._noise_bank[pick], shifts=shift, dims=(2, 3))

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        rot = torch.randint(0, 4, (n,), generator=generator)
        flip = torch.randint(0, 2, (n,), generator=generator).bool() if self.allow_flips else torch.zeros(n, dtype=torch.bool)
        out = x.clone()
        for k in range(4):
            for f in (False, True):
                mask = (rot == k) & (flip == f)
                if not mask.any():
                    continue
                m = mask.to(x.device)
                xs = x[m]
                if f:
                    xs = torch.flip(xs, dims=(3,))  # left-right mirror
                if k:
                    xs = torch.rot90(xs, k, dims=(2, 3))
                out[m] = xs
        y = torch.where(flip.to(y.device), self.flip_label.to(y.device)[y], y)
        if self.noise_std > 0:
            out = out.add_(self._noise(out, generator), alpha=self.noise_std)
        return out, y
