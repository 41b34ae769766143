"""Test-time views: the dihedral group of a galaxy image (4 rotations × an optional mirror flip).

A galaxy has no preferred orientation, so averaging a model's probabilities over rotated and
mirrored copies (test-time augmentation) steadies them. As in training, a mirror flip turns a
clockwise spiral into an anticlockwise one: the mirrored view's outputs are permuted back so that
each column still means its class. Where a chiral class has no mirror partner, flips are left out.
Used by export (to calibrate TTA probabilities) and by predict (to produce them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:  # torch where tensors are turned: the ONNX engine's process turns numpy arrays and has no torch
    import torch

View = tuple[int, bool]  # (quarter turns, mirrored)


def dihedral_views(flips_allowed: bool) -> list[View]:
    """All 8 views, or the 4 rotations where flips are not allowed."""
    flips = (False, True) if flips_allowed else (False,)
    return [(k, f) for f in flips for k in range(4)]


def mirror_permutation(class_names: Sequence[str], mirror_pairs: Sequence[Sequence[str]]) -> list[int]:
    """Class index order that swaps each mirror pair (applied to a mirrored view's outputs)."""
    names = list(class_names)
    perm = list(range(len(names)))
    for a, b in mirror_pairs:
        i, j = names.index(a), names.index(b)
        perm[i], perm[j] = j, i
    return perm


def view_of(x: torch.Tensor, view: View) -> torch.Tensor:
    """The batch seen in ``view``, in ``x``'s memory format: ``torch.rot90`` returns a contiguous (NCHW) copy even
    for zero turns, and a channels-last network fed NCHW runs its max-pools ~8x slower on the CPU (§20)."""
    import torch

    quarter_turns, mirrored = view
    if quarter_turns % 4 == 0 and not mirrored:
        return x
    turned = torch.rot90(x.flip(-1) if mirrored else x, quarter_turns, dims=(-2, -1))
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return turned.contiguous(memory_format=torch.channels_last)
    return turned


def array_view(x: np.ndarray, view: View) -> np.ndarray:
    """:func:`view_of` for a numpy batch [N, C, H, W] (the same turns and mirror; a view, not a copy)."""
    quarter_turns, mirrored = view
    return np.rot90(x[..., ::-1] if mirrored else x, quarter_turns, axes=(-2, -1))


def view_logits(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: Sequence[View],
                perm: Sequence[int]) -> torch.Tensor:
    """Logits [V, N, K] of ``forward`` on each view of the batch ``x`` [N, C, H, W], mirrored views permuted back."""
    import torch

    out = []
    with torch.inference_mode():
        for view in views:
            logits = forward(view_of(x, view)).float()
            out.append(logits[:, list(perm)] if view[1] else logits)
        return torch.stack(out)
