"""Group-equivariant blocks (C4: quarter turns; D4: quarter turns and mirror flips) in pure torch.

A galaxy image has no "up". A feature map of ``C`` channels here is ``C / |G|`` *fields*, each the
``|G|`` responses of one filter to every turned (and flipped) copy of itself: channel ``f·|G| + g``.
Turning the input by a group element ``h`` turns every map and cyclically permutes each field's
channels (``g → h∘g``), exactly, because on the pixel grid a quarter turn and a flip only move pixels
(rotating an input and a filter together rotates the correlation). After the network's global average
pool, :class:`GroupPool` takes the maximum over each field's channels: features that do not change
when the image turns.

Every layer computes one ordinary ``conv2d`` with an expanded filter bank built from its free
filters by ``torch.rot90``/``flip`` (on the weights' own device): the same FLOPs as a plain
convolution of the same channels, ``|G|`` times fewer parameters. :meth:`export` returns that plain
``nn.Conv2d`` (and ``nn.BatchNorm2d``): :func:`plain_convolutions` turns a trained network into the
same function made of ordinary modules, what ``model.ts`` and ``model.onnx`` hold.

Exact for image sizes that stay even through each downsampling (32, 64: 2×2 pooling of an odd map
drops an edge row). A block's stride is a 2×2 average pool before its convolutions: a stride-2
convolution samples every other pixel, a grid a quarter turn does not map onto itself.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from synthesis.models.spec import SymmetryGroup, group_of


def transform(filters: torch.Tensor, group: SymmetryGroup, g: int) -> torch.Tensor:
    """The spatial map of element ``g`` on the last two axes: flip left-right if mirrored, then quarter turns."""
    turns, mirrored = group.element(g)
    return torch.rot90(filters.flip(-1) if mirrored else filters, turns, dims=(-2, -1))


class LiftingConv(nn.Conv2d):
    """Image (``cin`` ordinary channels) → ``cout`` channels of group fields; "same" padding, stride 1.

    A ``Conv2d`` of the free filters (``cout / |G|`` of them): zero-cost scores and the parameter count see
    the free parameters; :meth:`forward` convolves with all their turned copies."""

    def __init__(self, cin: int, cout: int, kernel: int, group: SymmetryGroup) -> None:
        super().__init__(cin, cout // group.order, kernel, padding=kernel // 2, bias=False)
        self.group, self.out_fields = group, cout // group.order

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, free filters of {self.group.name}: {self.out_fields * self.group.order} out channels"

    def expanded_weight(self) -> torch.Tensor:
        """[cout, cin, k, k]: output channel ``f·|G| + g`` is free filter ``f`` under element ``g``."""
        copies = [transform(self.weight, self.group, g) for g in range(self.group.order)]
        return torch.stack(copies, dim=1).flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.expanded_weight(), None, 1, self.padding)

    def export(self) -> nn.Conv2d:
        weight = self.expanded_weight().detach()
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], self.kernel_size, padding=self.padding, bias=False,
                         device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(weight)
        return conv.train(self.training)


class GroupConv(LiftingConv):
    """Group fields → group fields (``cin``, ``cout`` channels, multiples of ``|G|``).

    Free filters [cout/|G|, cin, k, k], read as [cout/|G|, cin/|G|, |G|, k, k]. For output element ``g`` each
    filter is turned by ``g`` and its group axis permuted (``g' ← g⁻¹∘g'``): the group correlation of
    Cohen & Welling (2016)."""

    def __init__(self, cin: int, cout: int, kernel: int, group: SymmetryGroup) -> None:
        super().__init__(cin, cout, kernel, group)
        order = group.order
        table = [[group.multiply(group.inverse(g), h) for h in range(order)] for g in range(order)]
        self.register_buffer("permutation", torch.tensor(table, dtype=torch.long, device=self.weight.device),
                             persistent=False)

    def expanded_weight(self) -> torch.Tensor:
        order = self.group.order
        free = self.weight.reshape(self.out_fields, -1, order, *self.weight.shape[-2:])
        copies = [transform(free.index_select(2, self.permutation[g]), self.group, g) for g in range(order)]
        return torch.stack(copies, dim=1).flatten(0, 1).flatten(1, 2)


class FieldBatchNorm(nn.BatchNorm3d):
    """Batch norm with one mean, variance, scale and shift per field (shared by its ``|G|`` channels): a
    per-channel one would treat a field's turned copies differently and break the equivariance."""

    def __init__(self, channels: int, group: SymmetryGroup) -> None:
        super().__init__(channels // group.order)
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return super().forward(x.reshape(n, c // self.group.order, self.group.order, h, w)).reshape(n, c, h, w)

    def export(self) -> nn.BatchNorm2d:
        """The eval-mode per-channel batch norm (each field's statistics repeated over its channels)."""
        order = self.group.order
        plain = nn.BatchNorm2d(self.num_features * order, eps=self.eps, momentum=self.momentum,
                               device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(plain, name).copy_(getattr(self, name).repeat_interleave(order))
            plain.num_batches_tracked.copy_(self.num_batches_tracked)
        return plain.train(self.training)


class GroupPool(nn.Module):
    """[N, F·|G|, H, W] → [N, F, H, W]: the maximum over each field's channels, invariant to the group."""

    def __init__(self, group: SymmetryGroup) -> None:
        super().__init__()
        self.order = group.order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, c // self.order, self.order, h, w).amax(dim=2)


def lifting_stem(cin: int, cout: int, kernel: int, group: SymmetryGroup) -> nn.Sequential:
    """The network's first layer for an equivariant block type: image → group fields (conv, batch norm, ReLU)."""
    return nn.Sequential(LiftingConv(cin, cout, kernel, group), FieldBatchNorm(cout, group), nn.ReLU(inplace=True))


class EquivariantResidualBlock(nn.Module):
    """:class:`synthesis.models.blocks.ResidualBlock` made of group convolutions: two 3×3 group convolutions
    with field batch norms, and a shortcut (a 1×1 group convolution where the width changes or it strides)."""

    group: SymmetryGroup

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        group = self.group
        self.stride = stride
        self.conv1 = GroupConv(cin, cout, 3, group)
        self.bn1 = FieldBatchNorm(cout, group)
        self.conv2 = GroupConv(cout, cout, 3, group)
        self.bn2 = FieldBatchNorm(cout, group)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(GroupConv(cin, cout, 1, group), FieldBatchNorm(cout, group))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:  # the same output size as a "same"-padded stride-2 convolution
            x = nn.functional.avg_pool2d(x, self.stride, ceil_mode=True)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class C4Block(EquivariantResidualBlock):
    group = group_of("c4")


class D4Block(EquivariantResidualBlock):
    group = group_of("d4")


def plain_convolutions(model: nn.Module) -> nn.Module:
    """The same function made of ordinary modules: a copy with every group convolution and field batch norm
    replaced by its :meth:`export` (eval-mode batch norms: export the trained model). The model itself, not a
    copy, where it holds none."""
    if not any(isinstance(m, (LiftingConv, FieldBatchNorm)) for m in model.modules()):
        return model
    plain = copy.deepcopy(model)
    _replace_equivariant(plain)
    return plain


def _replace_equivariant(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, (LiftingConv, FieldBatchNorm)):
            setattr(module, name, child.export())
        else:
            _replace_equivariant(child)
