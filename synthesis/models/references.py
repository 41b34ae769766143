"""Standard architectures beside the searched ones: ResNet-18, MobileNetV3-small, EfficientNet-B0.

Built by torchvision's own builders (no pretrained weights: the comparison trains every model the
same way from scratch), then adapted to small images the way practitioners adapt them to 32-64 px
inputs (the CIFAR recipes): the first convolution keeps the resolution (3×3, stride 1; ResNet-18
also loses its early max-pool), so a 32 px galaxy is not reduced to 8 px before the first block.
The classifier is replaced by galaxy-synth's head: the backbone's pooled features, joined by an MLP
of the extra inputs (z, z_err) where the data has them, then one linear layer (after the dropout
the torchvision classifier had: none for ResNet-18, 0.2 for the other two).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from synthesis.models.spec import ReferenceSpec


def _backbone(spec: ReferenceSpec) -> tuple[nn.Module, int, float]:
    """(backbone that returns pooled features, their width, dropout before the classifier)."""
    from torchvision import models

    if spec.reference == "resnet18":
        net = models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(spec.in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        width = net.fc.in_features
        net.fc = nn.Identity()
        return net, width, 0.0
    if spec.reference == "mobilenet_v3_small":
        net = models.mobilenet_v3_small(weights=None)
        first = net.features[0][0]
        net.features[0][0] = nn.Conv2d(spec.in_channels, first.out_channels, 3, stride=1, padding=1, bias=False)
        width = net.classifier[0].in_features
        net.classifier = nn.Identity()
        return net, width, 0.2
    net = models.efficientnet_b0(weights=None)
    first = net.features[0][0]
    net.features[0][0] = nn.Conv2d(spec.in_channels, first.out_channels, 3, stride=1, padding=1, bias=False)
    width = net.classifier[1].in_features
    net.classifier = nn.Identity()
    return net, width, 0.2


class ReferenceNet(nn.Module):
    """A torchvision backbone with galaxy-synth's head (same call signature as :class:`synthesis.models.builder.GalaxyNet`)."""

    def __init__(self, spec: ReferenceSpec) -> None:
        super().__init__()
        self.n_extra = spec.n_extra
        self.backbone, features, dropout = _backbone(spec)
        self.extra_mlp: nn.Module = nn.Identity()
        if spec.n_extra > 0:
            self.extra_mlp = nn.Sequential(nn.Linear(spec.n_extra, spec.extra_hidden), nn.ReLU(inplace=True),
                                           nn.Linear(spec.extra_hidden, spec.extra_hidden), nn.ReLU(inplace=True))
            features += spec.extra_hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, spec.num_classes)

    def forward(self, x: torch.Tensor, extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = torch.flatten(self.backbone(x), 1)
        if self.n_extra > 0:
            if extra is None:
                raise ValueError(f"this model needs {self.n_extra} extra inputs (e.g. z, z_err)")
            h = torch.cat([h, self.extra_mlp(extra)], dim=1)
        return self.classifier(self.dropout(h))
