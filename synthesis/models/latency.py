"""Inference time as users pay it: a per-machine lookup table of operator times (FBNet, ProxylessNAS).

FLOPs mislead on a CPU: depthwise (inverted) blocks run 3–6× slower per FLOP than plain and residual ones
(docs/BENCHMARKS.md §23). A network's time per image is predicted here as the sum of its operators' times — stem,
each stage's pooling and blocks, the global pool and head — each operator configuration (its kind, widths, stride,
input size, batch) timed once on this machine and device, the first time a network needs it, and kept in a cache
file named by the machine (:func:`synthesis.hardware.machine_key`, the keying of ``--precision auto``'s
measurement). A study so pays only for the configurations it samples, a few milliseconds of timing each (the
median of repeats). Times are of the network as predict runs it: eval mode, channels-last, equivariant layers as
their plain convolutions, one CPU thread by default.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from synthesis.models.blocks import BLOCKS, _conv_bn_relu
from synthesis.models.equivariant import GroupPool, lifting_stem, plain_convolutions
from synthesis.models.spec import ArchSpec, ModelSpec, ReferenceSpec, group_of

CATALOGUE_BATCH = 256  # the batch a catalogue is predicted in: its per-image time is the throughput figure


@dataclass(frozen=True)
class Operator:
    """One part of a network, as timed: its ``key`` names the configuration; ``build`` makes the module and ``shape``
    is its input [channels, side] (a head also takes the extra inputs)."""

    key: str
    build: Callable[[], nn.Module]
    channels: int
    size: int
    n_extra: int = 0


def operators(spec: ModelSpec) -> list[Operator]:
    """The operators ``spec``'s network runs, in order, as :class:`synthesis.models.builder.GalaxyNet` builds it."""
    if isinstance(spec, ReferenceSpec):  # torchvision's networks are not decomposed: timed whole
        from synthesis.models.builder import build_model

        key = f"reference {spec.reference} {spec.in_channels}x{spec.image_size} classes{spec.num_classes} extra{spec.n_extra}/{spec.extra_hidden}"
        return [Operator(key, lambda: _WholeNetwork(build_model(spec)), spec.in_channels, spec.image_size, spec.n_extra)]
    group = group_of(spec.block)
    size, cin = spec.image_size, spec.stem_width
    stem_key = f"stem {spec.block if group else 'plain'} {spec.in_channels}->{cin} k{spec.stem_kernel} @{size}"
    ops = [Operator(stem_key, _stem_builder(spec), spec.in_channels, size)]
    for stage in spec.stages:
        for i in range(stage.depth):
            stride = 2 if i == 0 and spec.downsample == "stride" else 1
            if i == 0 and spec.downsample == "maxpool":
                ops.append(Operator(f"maxpool {cin} @{size}", lambda: nn.MaxPool2d(2), cin, size))
                size //= 2
            block_cls = BLOCKS[spec.block]
            ops.append(Operator(f"{spec.block} {cin}->{stage.width} s{stride} @{size}",
                                _builder(block_cls, cin, stage.width, stride), cin, size))
            size, cin = -(-size // stride), stage.width
    head_key = f"head {spec.block if group else 'plain'} {cin} @{size} classes{spec.num_classes} extra{spec.n_extra}/{spec.extra_hidden}"
    ops.append(Operator(head_key, lambda: _Head(spec, cin), cin, size, spec.n_extra))
    return ops


def _builder(cls: type[nn.Module], *args: int) -> Callable[[], nn.Module]:
    return lambda: cls(*args)


def _stem_builder(spec: ArchSpec) -> Callable[[], nn.Module]:
    group = group_of(spec.block)
    if group is None:
        return lambda: _conv_bn_relu(spec.in_channels, spec.stem_width, spec.stem_kernel)
    return lambda: lifting_stem(spec.in_channels, spec.stem_width, spec.stem_kernel, group)


class _Head(nn.Module):
    """GalaxyNet's end: global average pool (then group pool), the extra inputs' MLP, the classifier."""

    def __init__(self, spec: ArchSpec, channels: int) -> None:
        super().__init__()
        group = group_of(spec.block)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *([GroupPool(group)] if group else []))
        features = channels // group.order if group else channels
        self.extra_mlp = nn.Sequential(nn.Linear(spec.n_extra, spec.extra_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(spec.extra_hidden, spec.extra_hidden), nn.ReLU(inplace=True)) \
            if spec.n_extra else nn.Identity()
        self.classifier = nn.Linear(features + (spec.extra_hidden if spec.n_extra else 0), spec.outputs)

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(self.pool(x), 1)
        if extra:
            h = torch.cat([h, self.extra_mlp(extra[0])], dim=1)
        return self.classifier(h)


class _WholeNetwork(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        return self.net(x, *extra)


def time_operator(op: Operator, batch: int, device: torch.device, budget_seconds: float = 0.005,
                  min_repeats: int = 3, max_repeats: int = 25) -> float:
    """Median seconds of one forward pass of ``op`` on ``batch`` inputs: one warm-up pass (it builds oneDNN's
    kernels), then at least ``min_repeats`` passes and more until ``budget_seconds`` is spent."""
    with torch.device(device):  # an explicit device, never the process's default (tests/test_device_safety.py)
        module = plain_convolutions(op.build().eval()).to(memory_format=torch.channels_last)
    x = torch.zeros(batch, op.channels, op.size, op.size, device=device).contiguous(memory_format=torch.channels_last)
    extra = (torch.zeros(batch, op.n_extra, device=device),) if op.n_extra else ()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: list[float] = []
    with torch.inference_mode():
        module(x, *extra)
        sync()
        start = time.perf_counter()
        while len(times) < min_repeats or (time.perf_counter() - start < budget_seconds and len(times) < max_repeats):
            t0 = time.perf_counter()
            module(x, *extra)
            sync()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


class LatencyTable:
    """Operator times of one machine and device, filled lazily: ``predict(spec)`` times only the configurations
    it has not seen, and :meth:`save` (after each prediction that timed something) keeps them for the next run.

    ``cache_dir`` None keeps the table in memory only. ``threads`` CPU threads time each operator (one by
    default: a figure that does not depend on how many cores a trial had, and predict's per-process plan)."""

    def __init__(self, cache_dir: Path | str | None = None, device: torch.device | str = "cpu", threads: int = 1,
                 timer: Callable[[Operator, int, torch.device], float] = time_operator) -> None:
        from synthesis.hardware import machine_key

        self.device = torch.device(device)
        self.threads = threads
        self.timer = timer
        what = f"latency {self.device.type} {threads} thread{'s' if threads != 1 else ''}"
        if self.device.type == "cuda":
            what += f" {torch.cuda.get_device_name(self.device)}"
        self.key = machine_key(what)
        self.path = Path(cache_dir) / f"latency-{self.key}.json" if cache_dir is not None else None
        self.seconds: dict[str, float] = self._read()  # "operator key|batch" → median seconds per pass
        self.timed = 0  # how many configurations this table has timed itself (the rest came from the cache)

    def _read(self) -> dict[str, float]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            return {k: float(v) for k, v in json.loads(self.path.read_text())["seconds"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # an unreadable cache is measured again

    def save(self) -> None:
        """Write the table, merged with what other processes have written meanwhile (parallel workers share it)."""
        if self.path is None:
            return
        from galaxy_common import atomic_write_text

        merged = {**self._read(), **self.seconds}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps({"seconds": merged, "device": str(self.device), "threads": self.threads,
                                                     "torch": torch.__version__}, sort_keys=True))
        except OSError:
            pass  # a cache we cannot write costs its timings again next run, nothing more

    def operator_ms(self, op: Operator, batch: int) -> float:
        """Milliseconds per image of one operator at ``batch``, timed here on first use."""
        key = f"{op.key}|b{batch}"
        if key not in self.seconds:
            self.seconds[key] = self._timed(op, batch)
            self.timed += 1
        return 1e3 * self.seconds[key] / batch

    def _timed(self, op: Operator, batch: int) -> float:
        if self.device.type != "cpu":
            return self.timer(op, batch, self.device)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self.timer(op, batch, self.device)
        finally:
            torch.set_num_threads(threads)

    def predict(self, spec: ModelSpec, batch: int = 1) -> float:
        """Predicted milliseconds per image of ``spec``'s network at ``batch``: the sum of its operators' times."""
        before = self.timed
        total = sum(self.operator_ms(op, batch) for op in operators(spec))
        if self.timed != before:
            self.save()
        return total

    def predictions(self, spec: ModelSpec) -> dict[str, float]:
        """What a trial records beside its FLOPs: predicted ms per image at batch 1 and at :data:`CATALOGUE_BATCH`."""
        return {"predicted_ms_per_image": self.predict(spec, 1),
                "predicted_ms_per_image_at_batch": self.predict(spec, CATALOGUE_BATCH)}


def measured_ms_per_image(model: nn.Module, spec: ModelSpec, batch: int, repeats: int = 5) -> float:
    """The real milliseconds per image of a whole network on one CPU thread at ``batch`` (median of ``repeats``):
    what the table's prediction is checked against (bench/latency_model.py)."""
    op = Operator("whole", lambda: _WholeNetwork(model), spec.in_channels, spec.image_size, spec.n_extra)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return 1e3 * time_operator(op, batch, torch.device("cpu"), budget_seconds=0.0, min_repeats=repeats) / batch
    finally:
        torch.set_num_threads(threads)
