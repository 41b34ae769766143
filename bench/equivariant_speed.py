"""Speed per FLOP of one equivariant block against an ordinary block of equal FLOPs, side by side in one run.

One block at a galaxy-synth size: a 32×32 map of ``--channels`` channels in and out, stride 1, batch
64, on one thread. Arms (each the same FLOPs, counted by torch's FlopCounterMode):

* ``residual``: the ordinary residual block (synthesis.models.blocks.ResidualBlock);
* ``c4``, ``d4``: the equivariant residual blocks (pure torch: the filter bank rebuilt by rot90/flip each
  training step); ``c4 plain-conv``: c4 after :func:`synthesis.models.equivariant.plain_convolutions`,
  what export and predict run (inference only);
* ``e2cnn C4``, ``e2cnn C8`` (when e2cnn is importable): the same residual block from e2cnn's R2Conv (regular
  fields), InnerBatchNorm and ReLU — the library route to C8/D8.

Training = forward + backward (train mode), inference = forward in eval mode under inference_mode. The
arms are timed round-robin, ``--rounds`` times each, and the fastest round of each is kept: on a shared
machine absolute figures drift with the background load, the ratios between arms timed side by side
much less. Ratios are speed per FLOP relative to ``residual``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/equivariant_speed.py      # ~2 min; writes results/bench/equivariant_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ordinary_and_equivariant(channels: int) -> dict:
    from synthesis.models.blocks import C4Block, D4Block, ResidualBlock
    from synthesis.models.equivariant import plain_convolutions

    blocks = {"residual": ResidualBlock(channels, channels), "c4": C4Block(channels, channels),
              "d4": D4Block(channels, channels)}
    blocks["c4 plain-conv"] = plain_convolutions(C4Block(channels, channels).eval())
    return blocks


def e2cnn_blocks(channels: int) -> dict:
    """The same residual block from e2cnn for C4 and C8 (regular fields: channels / N fields)."""
    try:
        from e2cnn import gspaces
        from e2cnn import nn as enn
    except ImportError:
        return {}
    import torch

    class E2Residual(torch.nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            space = gspaces.Rot2dOnR2(N=n)
            self.field = enn.FieldType(space, [space.regular_repr] * (channels // n))
            self.body = enn.SequentialModule(
                enn.R2Conv(self.field, self.field, 3, padding=1, bias=False), enn.InnerBatchNorm(self.field),
                enn.ReLU(self.field), enn.R2Conv(self.field, self.field, 3, padding=1, bias=False),
                enn.InnerBatchNorm(self.field))
            self.relu = enn.ReLU(self.field)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            g = enn.GeometricTensor(x, self.field)
            return self.relu(self.body(g) + g).tensor

    return {"e2cnn C4": E2Residual(4), "e2cnn C8": E2Residual(8)}


def flops_of(block, x) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        block.eval()(x[:1])
    return int(counter.get_total_flops())


def time_once(block, x, training: bool) -> float:
    import torch

    if training:
        block.train()
        t0 = time.perf_counter()
        block(x).sum().backward()
        return time.perf_counter() - t0
    block.eval()
    with torch.inference_mode():
        t0 = time.perf_counter()
        block(x)
        return time.perf_counter() - t0


def measure(blocks: dict, x, rounds: int) -> dict:
    best = {(name, mode): float("inf") for name in blocks for mode in ("train", "infer")}
    for name, block in blocks.items():  # warm-up: oneDNN builds its kernels on the first pass
        for mode in ("train", "infer"):
            if not (mode == "train" and "plain-conv" in name):
                time_once(block, x, mode == "train")
    for _ in range(rounds):
        for name, block in blocks.items():
            for mode in ("train", "infer"):
                if mode == "train" and "plain-conv" in name:
                    continue  # an exported model is not trained
                best[name, mode] = min(best[name, mode], time_once(block, x, mode == "train"))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "equivariant_speed.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    blocks = {**ordinary_and_equivariant(args.channels), **e2cnn_blocks(args.channels)}
    x = torch.randn(args.batch, args.channels, args.size, args.size, device="cpu")
    # e2cnn's modules trip FlopCounterMode's module tracker; their convolutions are the residual block's shapes
    flops = {name: flops_of(block, x) for name, block in blocks.items() if not name.startswith("e2cnn")}
    flops.update({name: flops["residual"] for name in blocks if name.startswith("e2cnn")})
    best = measure(blocks, x, args.rounds)
    rows = []
    for name in blocks:
        row = {"block": name, "forward_mflops_per_image": flops[name] / 1e6,
               "params": sum(p.numel() for p in blocks[name].parameters())}
        for mode in ("train", "infer"):
            if best[name, mode] == float("inf"):
                continue
            per_flop = args.batch * flops[name] / best[name, mode]
            reference = args.batch * flops["residual"] / best["residual", mode]
            row[f"{mode}_images_per_second"] = args.batch / best[name, mode]
            row[f"{mode}_speed_per_flop_vs_residual"] = per_flop / reference
        rows.append(row)
        print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"channels": args.channels, "size": args.size, "batch": args.batch,
                                    "threads": 1, "rounds": args.rounds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
