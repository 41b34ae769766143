"""The one builder: a spec in, an nn.Module out; its size and cost.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from synthesis.models.blocks import BLOCKS, InvertedResidualBlock, _conv_bn_relu
from synthesis.models.equivariant import GroupPool, lifting_stem, plain_convolutions
from synthesis.models.spec import ArchSpec, ModelSpec, ReferenceSpec, group_of
from synthesis.models.vote_head import VoteHead


class GalaxyNet(nn.Module):
    """Stem → stages → global average pool (+ extra-input MLP) → dropout → linear.

    With an equivariant block type the stem lifts the image to group fields and the pool ends with a
    group pool (:mod:`synthesis.models.equivariant`): the features, so the outputs, ignore quarter turns."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.n_extra = spec.n_extra
        group = group_of(spec.block)
        if group is None:
            self.stem = _conv_bn_relu(spec.in_channels, spec.stem_width, spec.stem_kernel)
        else:
            self.stem = lifting_stem(spec.in_channels, spec.stem_width, spec.stem_kernel, group)
        block_cls = BLOCKS[spec.block]
        stages: list[nn.Module] = []
        cin = spec.stem_width
        for stage in spec.stages:
            layers: list[nn.Module] = []
            if spec.downsample == "maxpool":
                layers.append(nn.MaxPool2d(2))
            for i in range(stage.depth):
                stride = 2 if (i == 0 and spec.downsample == "stride") else 1
                layers.append(block_cls(cin, stage.width, stride))
                cin = stage.width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        features = cin
        if group is not None:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), GroupPool(group))
            features = cin // group.order
        self.extra_mlp: nn.Module = nn.Identity()
        if spec.n_extra > 0:
            self.extra_mlp = nn.Sequential(
                nn.Linear(spec.n_extra, spec.extra_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(spec.extra_hidden, spec.extra_hidden),
                nn.ReLU(inplace=True),
            )
            features += spec.extra_hidden
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier: nn.Module = nn.Linear(features, spec.num_classes) if spec.votes is None else \
            VoteHead(features, spec.votes)

    def features(self, x: torch.Tensor, extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = torch.flatten(self.pool(self.stages(self.stem(x))), 1)
        if self.n_extra > 0:
            if extra is None:
                raise ValueError(f"this model needs {self.n_extra} extra inputs (e.g. z, z_err)")
            h = torch.cat([h, self.extra_mlp(extra)], dim=1)
        return h

    def forward(self, x: torch.Tensor, extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Class logits (a vote network's too: :class:`synthesis.models.vote_head.VoteHead`)."""
        return self.classifier(self.dropout(self.features(x, extra)))

    def votes(self, x: torch.Tensor, extra: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A vote network's class logits and Dirichlet concentrations, from one pass."""
        return self.classifier.votes(self.dropout(self.features(x, extra)))


def build_model(spec: ModelSpec, device: torch.device | str = "cpu") -> nn.Module:
    """The one way to turn a spec into a model (trials, full training, export, the reference architectures).

    Built on an explicit device (the CPU unless told otherwise, then moved by the caller), never
    on whatever ``torch.set_default_device`` says: initialisation then draws from the same
    generator everywhere, so a seed gives the same initial weights on every machine.
    """
    with torch.device(device):
        if isinstance(spec, ReferenceSpec):
            from synthesis.models.references import ReferenceNet

            return ReferenceNet(spec)
        return GalaxyNet(spec)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spec_cost(spec: ModelSpec) -> tuple[int, int]:
    """(parameters, forward FLOPs per image) of a spec without building it: checking a sampled
    architecture against the caps costs microseconds (a counted forward pass on the meta device took
    a quarter of a second for an inverted-residual network). Equal to :func:`count_params` and
    :func:`count_flops` of the built model (tests/synthesis/models/test_builder.py checks it on samples of the space);
    reference architectures are counted on the meta device."""
    if isinstance(spec, ReferenceSpec):
        model = build_model(spec, "meta")
        return count_params(model), count_flops(model, spec)
    group = group_of(spec.block)
    cost = _Cost(group.order if group else 1)
    size = spec.image_size
    cost.conv(spec.in_channels, spec.stem_width, spec.stem_kernel, size)
    cin = spec.stem_width
    for stage in spec.stages:
        for i in range(stage.depth):
            stride = 2 if i == 0 and spec.downsample == "stride" else 1
            if i == 0 and spec.downsample == "maxpool":
                size //= 2
            out = -(-size // stride)
            _block_cost(cost, spec.block, cin, stage.width, stride, size, out)
            size, cin = out, stage.width
    features = cin // cost.order
    if spec.n_extra > 0:
        cost.linear(spec.n_extra, spec.extra_hidden)
        cost.linear(spec.extra_hidden, spec.extra_hidden)
        features += spec.extra_hidden
    cost.linear(features, spec.outputs)
    return cost.params, cost.flops


def _block_cost(cost: _Cost, block: str, cin: int, cout: int, stride: int, size: int, out: int) -> None:
    """One block of ``cin`` → ``cout`` channels from a ``size``² map to an ``out``² one."""
    if block == "plain":
        cost.conv(cin, cout, 3, out)
    elif block == "inverted":
        hidden = cin * InvertedResidualBlock.expansion
        cost.conv(cin, hidden, 1, size)
        cost.conv(hidden, hidden, 3, out, groups=hidden)
        cost.conv(hidden, cout, 1, out)
    else:  # residual, and the equivariant residual blocks (their stride is a pool before the convolutions)
        cost.conv(cin, cout, 3, out)
        cost.conv(cout, cout, 3, out)
        if stride != 1 or cin != cout:
            cost.conv(cin, cout, 1, out)


class _Cost:
    """Parameters and FLOPs as torch's FlopCounterMode counts them: 2 per multiply-add of convolutions and
    linear layers; BatchNorm has 2 parameters per channel, bias-free convolutions none. In a network of group
    convolutions (``order`` = |G| > 1) the FLOPs are those of the expanded plain convolution, the parameters
    |G| times fewer (one free filter and one batch-norm scale and shift per field of |G| channels)."""

    def __init__(self, order: int = 1) -> None:
        self.params = 0
        self.flops = 0
        self.order = order

    def conv(self, cin: int, cout: int, kernel: int, out_size: int, groups: int = 1) -> None:
        weights = cout * (cin // groups) * kernel * kernel
        self.params += (weights + 2 * cout) // self.order  # + BatchNorm
        self.flops += 2 * weights * out_size * out_size

    def linear(self, fin: int, fout: int) -> None:
        self.params += fin * fout + fout
        self.flops += 2 * fin * fout


def count_flops(model: nn.Module, spec: ModelSpec) -> int:
    """Forward FLOPs for one image, counted by torch's own FlopCounterMode (2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, spec.in_channels, spec.image_size, spec.image_size, device=device)
    extra = torch.zeros(1, spec.n_extra, device=device) if spec.n_extra else None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, extra)
    model.train(was_training)
    return int(counter.get_total_flops())


def cpu_images_per_second(model: nn.Module, spec: ModelSpec, batch: int = 64, budget_seconds: float = 0.02) -> float:
    """Inference speed on this CPU, one thread, batch ``batch``: a cheap measured cost beside FLOPs and parameters.

    The fastest of a few forward passes (at least two, until ``budget_seconds`` is spent) of a copy
    of the model in eval mode on zeros: a few milliseconds for the networks of a search. One thread,
    so that the figure does not depend on how many cores the trial happened to have. On a busy
    machine it reads low; it ranks architectures, it is not a latency guarantee (export measures that).
    """
    import copy
    import time

    threads = torch.get_num_threads()
    net = plain_convolutions(copy.deepcopy(model).to("cpu").eval())  # an equivariant network as predict runs it
    x = torch.zeros(batch, spec.in_channels, spec.image_size, spec.image_size, device="cpu").contiguous(
        memory_format=torch.channels_last)
    extra = (torch.zeros(batch, spec.n_extra, device="cpu"),) if spec.n_extra else ()
    net = net.to(memory_format=torch.channels_last)
    best = float("inf")
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            net(x, *extra)  # the first pass builds oneDNN kernels
            start, runs = time.perf_counter(), 0
            while runs < 2 or (time.perf_counter() - start < budget_seconds and runs < 20):
                t0 = time.perf_counter()
                net(x, *extra)
                best = min(best, time.perf_counter() - t0)
                runs += 1
    finally:
        torch.set_num_threads(threads)
    return float(batch / best)
