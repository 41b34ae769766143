"""The block types of the search space (plain, residual, inverted residual; the equivariant c4 and d4 of
:mod:`synthesis.models.equivariant`) and their parts.
"""

from __future__ import annotations

import torch
from torch import nn

from synthesis.models.equivariant import C4Block, D4Block


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlainBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = _conv_bn_relu(cin, cout, 3, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class StridedPointwiseConv(nn.Conv2d):
    """A 1×1 convolution with stride s, computed as "keep every s-th pixel, then 1×1 stride 1".

    The output and the parameters (names and shapes) are those of ``nn.Conv2d(cin, cout, 1,
    stride=s)``. Why not the plain module: torch 2.14.1's CPU (oneDNN 3.12) backward of a 1×1
    stride-2 convolution on channels-last input with fewer than 16 input channels corrupts the heap
    for odd batch sizes, killing the process (``double free or corruption``); a trial's last batch
    is often odd. ``tests/synthesis/models/test_blocks.py`` reproduces the crash in a subprocess.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        return nn.functional.conv2d(x[:, :, ::s, ::s], self.weight, self.bias)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(StridedPointwiseConv(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class InvertedResidualBlock(nn.Module):
    expansion = 4

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        hidden = cin * self.expansion
        self.use_residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            _conv_bn_relu(cin, hidden, 1),
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


BLOCKS: dict[str, type[nn.Module]] = {
    "plain": PlainBlock,
    "residual": ResidualBlock,
    "inverted": InvertedResidualBlock,
    "c4": C4Block,
    "d4": D4Block,
}
