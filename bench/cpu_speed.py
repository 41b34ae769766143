"""Trial speed on this CPU, side by side in one run: fp32 vs bf16, the old loop vs the sync-free one, glibc tuned or not.

For each architecture (plain / residual / inverted blocks) and image size, the same 2-epoch trial
(gz1_dev trial subsets, batch 64, AdamW, augmentation, validation after each epoch) is timed:

* ``before``: the training loop as it was before this round (per-batch host syncs; kept as the
  test oracle tests/_reference_training.py), fp32, glibc's default allocator settings;
* ``sync-free fp32``, ``sync-free bf16``: today's loop, glibc tuned (synthesis.hardware.device.tune_allocator);
* each of those in a fresh subprocess, so glibc's settings and oneDNN's kernel caches start equal.

Also the fp32 and bf16 GEMM peaks of this CPU (2048² matmul), to put the training GFLOP/s
(3 × forward FLOPs × images/s) beside them, and user/sys CPU time per arm (the allocator's effect
shows in sys time).

    .venv/bin/python bench/cpu_speed.py                       # ~10 min on 2 cores; writes results/bench/cpu_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gz1_dev"

ARCHS = {
    "plain": {"stages": [[2, 32], [2, 64], [1, 96]], "block": "plain", "stem_width": 16},
    "residual": {"stages": [[2, 32], [2, 64], [1, 96]], "block": "residual", "stem_width": 16},
    "inverted": {"stages": [[2, 24], [2, 48], [1, 64]], "block": "inverted", "stem_width": 16},
}
ARMS = ("before", "sync-free fp32 untuned", "sync-free fp32", "sync-free bf16")


def gemm_peaks() -> dict[str, float]:
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(2048, 2048, dtype=dtype)
        b = torch.randn(2048, 2048, dtype=dtype)
        for _ in range(3):
            a @ b
        t0 = time.perf_counter()
        reps = 10
        for _ in range(reps):
            a @ b
        out[name] = 2 * 2048**3 * reps / (time.perf_counter() - t0) / 1e9
    return out


def one_arm(arch: str, size: int, arm: str, data_dir: str, cache: str, epochs: int) -> dict:
    """Run in a subprocess: one arch, one size, one arm; warm-up epoch first, then the timed trial."""
    import torch

    from synthesis.data.dataset import ClassMap, load_dataset
    from synthesis.data.preparation import build_trial_data, data_plan
    from synthesis.data.settings import DataSettings
    from synthesis.hardware.device import tune_allocator
    from synthesis.models.builder import build_model, count_flops
    from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig
    from synthesis.settings import StudySettings
    from synthesis.training.loop import train_model
    from tests._reference_training import reference_train_model

    torch.set_num_threads(os.cpu_count() or 1)
    if arm not in ("before", "sync-free fp32 untuned"):
        tune_allocator()
    data = load_dataset(data_dir, size=size, class_map=ClassMap.parse(["spiral_cw,spiral_acw=spiral"], ["dont_know"]),
                        cache_dir=cache, progress=False)
    d = build_trial_data(data, data_plan(data, DataSettings.of(StudySettings())), torch.device("cpu"))
    a = ARCHS[arch]
    spec = ArchSpec(num_classes=len(d.class_names), stages=tuple(StageSpec(*s) for s in a["stages"]), block=a["block"],
                    stem_width=a["stem_width"], image_size=size)
    cfg = TrainConfig(optimizer="adamw", lr=1e-3, batch_size=64)
    loop = reference_train_model if arm == "before" else train_model
    kwargs = dict(normalizer=d.normalizer, num_classes=len(d.class_names), val=d.val, mirror_pairs=d.mirror_pairs, seed=0)
    if arm != "before":
        kwargs["precision"] = "bf16" if arm.endswith("bf16") else "fp32"
    loop(build_model(spec), d.train, cfg, 1, **kwargs)  # warm-up: oneDNN builds its kernels per shape
    torch.manual_seed(0)  # every arm trains the same initial network
    model = build_model(spec)
    flops = count_flops(model, spec)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    hist = loop(model, d.train, cfg, epochs, **kwargs)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    images_per_second = sum(e.images_per_second for e in hist.epochs) / len(hist.epochs)
    return {"arch": arch, "size": size, "arm": arm, "forward_mflops": flops / 1e6, "trial_seconds": wall,
            "train_images_per_second": images_per_second, "user_seconds": r1.ru_utime - r0.ru_utime,
            "sys_seconds": r1.ru_stime - r0.ru_stime,
            "training_gflops": 3 * flops * images_per_second / 1e9,
            "val_acc": hist.last.val_acc, "train_loss": hist.last.train_loss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cache", default="results/bench/cache")
    ap.add_argument("--out", default="results/bench/cpu_speed.json")
    ap.add_argument("--one", nargs=3, metavar=("ARCH", "SIZE", "ARM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_arm(args.one[0], int(args.one[1]), args.one[2], args.data, args.cache, args.epochs)))
        return
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data} is absent: this benchmark reads gz1_dev from ../shared")
    rows = []
    for size in args.sizes:
        for arch in ARCHS:
            for arm in ARMS:
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                if arm in ("before", "sync-free fp32 untuned"):
                    env["GALAXY_SYNTH_NO_MALLOPT"] = "1"
                res = subprocess.run([sys.executable, __file__, "--data", args.data, "--epochs", str(args.epochs),
                                      "--cache", args.cache, "--one", arch, str(size), arm],
                                     capture_output=True, text=True, env=env, cwd=ROOT)
                if res.returncode != 0:
                    raise SystemExit(res.stderr[-2000:])
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    peaks = gemm_peaks()
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
           "gemm_gflops": peaks, "rows": rows, "command": " ".join(["python", "bench/cpu_speed.py", *sys.argv[1:]])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"GEMM peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    print("| arch | px | MFLOPs | before | sync-free fp32, glibc default | + glibc tuned | + bf16 | before → bf16 | "
          "train GFLOP/s fp32 / bf16 | sys s: before / untuned / tuned |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by = {(r["arch"], r["size"], r["arm"]): r for r in rows}
    for size in args.sizes:
        for arch in ARCHS:
            b, u, f, h = (by[(arch, size, a)] for a in ARMS)
            print(f"| {arch} | {size} | {b['forward_mflops']:.0f} | {b['trial_seconds']:.1f} s | {u['trial_seconds']:.1f} s | "
                  f"{f['trial_seconds']:.1f} s | {h['trial_seconds']:.1f} s | {b['trial_seconds'] / h['trial_seconds']:.2f}× | "
                  f"{f['training_gflops']:.0f} / {h['training_gflops']:.0f} | "
                  f"{b['sys_seconds']:.1f} / {u['sys_seconds']:.1f} / {f['sys_seconds']:.1f} |")


if __name__ == "__main__":
    main()
