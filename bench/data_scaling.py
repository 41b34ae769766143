"""Data sets users really have: decode time and memory for 10k, 30k and 100k images, 1 and 2 workers.

Procedural galaxies (the embedded generator) are written once as JPEG files with a labels.csv per
size (the folders share the files). For each size, in fresh processes:

* ``decode``: ``load_dataset`` with an empty cache: parallel decode into the memory-mapped cache,
  wall time and peak resident memory (VmHWM) of the process;
* ``workers``: 1 and then 2 processes open the warm cache and prepare what a trial worker holds
  (the trial subsets as tensors, the study's stored statistics), then wait; their resident (RSS),
  proportional (PSS) and private memory are read from /proc/<pid>/smaps_rollup. Pages of the
  cache both map count once in PSS: a second worker should add its private memory only.

    .venv/bin/python bench/data_scaling.py --sizes 10000 30000 100000 --px 64     # ≈ 10 min, ~1.5 GB of /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_images(folder: Path, n: int, px: int) -> None:
    """n procedural galaxies as JPEG files (generated in chunks, written once)."""
    import pandas as pd
    from PIL import Image

    from synthesis.data.synthetic import generate_galaxies

    images_dir = folder / "all"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    done = len(list(images_dir.glob("*.jpg")))
    for start in range(0, n, 2000):
        count = min(2000, n - start)
        images, labels, extras, names = generate_galaxies(n=count, size=px, seed=start + 1)
        for i in range(count):
            name = f"g{start + i:06d}.jpg"
            if start + i >= done:
                Image.fromarray(images[i]).save(images_dir / name, quality=92)
            rows.append({"file": f"../all/{name}", "label_name": names[labels[i]], "z": float(extras[i, 0]),
                         "z_err": float(extras[i, 1])})
    table = pd.DataFrame(rows)
    for size in ARGS.sizes:
        sub = folder / f"n{size}"
        sub.mkdir(exist_ok=True)
        table.head(size).to_csv(sub / "labels.csv", index=False)


def _rollup(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key.strip()] = int(value.split()[0]) * 1024
    return out


def _cache_mapping(pid: int) -> dict[str, int]:
    """Rss / Pss / private bytes of the process's mappings of the image cache (.npy) file."""
    out = {"Rss": 0, "Pss": 0, "Private": 0}
    current = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):  # a mapping's header line
            current = line.rstrip().endswith(".npy")
        elif current and head[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
            key = "Private" if head[0].startswith("Private") else head[0][:-1]
            out[key] += int(head[1]) * 1024
    return out


def child_decode(folder: str, px: int, cache: str) -> None:
    from synthesis.data.dataset import load_dataset

    t0 = time.perf_counter()
    data = load_dataset(folder, size=px, crop=1.0, cache_dir=cache, progress=False)
    seconds = time.perf_counter() - t0
    hwm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM"))
    print(json.dumps({"images": len(data), "decode_seconds": seconds, "peak_rss_bytes": hwm,
                      "cache_bytes": int(data.images.nbytes)}))


def child_worker(folder: str, px: int, cache: str, ready: str) -> None:
    import torch

    from synthesis.data.dataset import load_dataset
    from synthesis.data.preparation import PreparedData, data_plan
    from synthesis.data.settings import DataSettings
    from synthesis.settings import StudySettings

    data = load_dataset(folder, size=px, crop=1.0, cache_dir=cache, progress=False)
    plan = data_plan(data, DataSettings.of(StudySettings()))
    prep = PreparedData.from_plan(data, plan, {"normalizer": {"mean": [0.1] * 3, "std": [0.2] * 3},
                                               "extra_scaler": {"mean": [0.0, 0.0], "std": [1.0, 1.0]}})
    train, val = prep.split("trial_train", torch.device("cpu")), prep.split("trial_val", torch.device("cpu"))
    Path(ready).write_text(str(len(train) + len(val)))
    time.sleep(600)


def measure_workers(folder: Path, px: int, cache: Path, count: int) -> dict:
    procs, readies = [], []
    for i in range(count):
        ready = cache / f"ready{i}-{time.time_ns()}"
        readies.append(ready)
        procs.append(subprocess.Popen([sys.executable, __file__, "--child-worker", str(folder), str(px), str(cache),
                                       str(ready)], env={**os.environ, "PYTHONPATH": str(ROOT)}))
    try:
        while not all(r.exists() for r in readies):
            time.sleep(0.2)
        time.sleep(1.0)
        stats = [_rollup(p.pid) for p in procs]
        cache_maps = [_cache_mapping(p.pid) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return {"workers": count, "rss_bytes": [s["Rss"] for s in stats], "pss_bytes": [s["Pss"] for s in stats],
            "anonymous_bytes": [s["Anonymous"] for s in stats],
            "cache_rss_bytes": [c["Rss"] for c in cache_maps], "cache_pss_bytes": [c["Pss"] for c in cache_maps],
            "cache_private_bytes": [c["Private"] for c in cache_maps],
            "total_pss_bytes": sum(s["Pss"] for s in stats)}


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--px", type=int, default=64)
    ap.add_argument("--folder", default="/tmp/galaxy-synth-scaling")
    ap.add_argument("--out", default="results/bench/data_scaling.json")
    ap.add_argument("--child-decode", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--child-worker", nargs=4, help=argparse.SUPPRESS)
    ARGS = ap.parse_args()
    if ARGS.child_decode:
        return child_decode(ARGS.child_decode[0], int(ARGS.child_decode[1]), ARGS.child_decode[2])
    if ARGS.child_worker:
        return child_worker(ARGS.child_worker[0], int(ARGS.child_worker[1]), ARGS.child_worker[2], ARGS.child_worker[3])
    folder = Path(ARGS.folder)
    t0 = time.perf_counter()
    write_images(folder, max(ARGS.sizes), ARGS.px)
    print(f"wrote the images in {time.perf_counter() - t0:.0f} s", flush=True)
    subprocess.run(["sync"], check=False)
    rows = []
    for size in ARGS.sizes:
        cache = folder / f"cache-n{size}"
        for old in cache.glob("*.npy"):
            old.unlink()
        cache.mkdir(exist_ok=True)
        res = subprocess.run([sys.executable, __file__, "--child-decode", str(folder / f"n{size}"), str(ARGS.px), str(cache)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if res.returncode != 0:
            raise SystemExit(res.stderr[-2000:])
        row = {"images": size, **json.loads(res.stdout.strip().splitlines()[-1])}
        row["one_worker"] = measure_workers(folder / f"n{size}", ARGS.px, cache, 1)
        row["two_workers"] = measure_workers(folder / f"n{size}", ARGS.px, cache, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"px": ARGS.px, "cores": os.cpu_count(), "rows": rows,
           "command": " ".join(["python", "bench/data_scaling.py", *sys.argv[1:]])}
    Path(ARGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ARGS.out).write_text(json.dumps(out, indent=2))
    mb = 1024**2
    print("| images | decode (s) | images/s | peak RSS while decoding | cache file | 1 worker: RSS, of it cache pages / "
          "anonymous | 2 workers: cache PSS each / anonymous each | PSS of both workers |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        one, two = r["one_worker"], r["two_workers"]
        print(f"| {r['images']:,} | {r['decode_seconds']:.1f} | {r['images'] / r['decode_seconds']:.0f} | "
              f"{r['peak_rss_bytes'] / mb:.0f} MB | {r['cache_bytes'] / mb:.0f} MB | "
              f"{one['rss_bytes'][0] / mb:.0f} MB: {one['cache_rss_bytes'][0] / mb:.0f} / {one['anonymous_bytes'][0] / mb:.0f} MB | "
              f"{', '.join(f'{p / mb:.0f}' for p in two['cache_pss_bytes'])} / "
              f"{', '.join(f'{p / mb:.0f}' for p in two['anonymous_bytes'])} MB | {two['total_pss_bytes'] / mb:.0f} MB |")


if __name__ == "__main__":
    main()
