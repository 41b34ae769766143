"""Catalogue inference against the decode limit (docs/BENCHMARKS.md §20): images/s of ``galaxy-synth predict``
beside the decode-only ceiling, memory, and resume after ``kill -9`` at scale.

The catalogue is the 3,333 real SDSS JPEGs of gz1_dev (423×423), repeated to the size asked for
(the files are then in the page cache: what is measured is CPU — decode, crop, resize, model —
not disk). Models are model folders in the exported format with untrained weights (throughput
does not depend on the weights): a small searched-style network and torchvision's ResNet-18 (the
reference), at 32 and 64 px. Each case runs ``galaxy-synth predict`` as a child process on a
quiet machine and records wall time, images/s and the peak resident memory of the whole process
tree (sampled every 0.2 s). The ceiling is the same files decoded, cropped and resized by the same
number of processes with nothing else to do. A per-image split (one thread, in this process)
times JPEG decode, crop+resize and the model (torch fp32 and bf16, ONNX Runtime) separately. predict runs
with its defaults (``--precision auto``: bf16 on a CPU with AMX; ``--engine auto``: ONNX Runtime for fp32
where installed), so its wall time includes its start-up (``startup_s``); at scale the torch engine runs
beside it. ``--pairs N`` repeats (ceiling, predict) N more times at scale: on a host whose speed drifts,
each ratio is read from a pair measured back to back.

    .venv/bin/python bench/catalogue_throughput.py --images 20000 --big 100000 --out docs/catalogue_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GZ1 = ROOT.parent / "shared" / "data" / "gz1_dev"
CROP = 0.5  # gz1's galaxies are small in the frame (the study default for image folders)


def reference_domain(size: int, count: int = 512) -> dict:
    """The card's training-image statistics, here from gz1 images themselves (predict computes them per chunk)."""
    from galaxy_synth.predict import image_statistics
    from synthesis.data.decode import decode_image

    files = sorted((GZ1 / "images").glob("*.jpg"))[:count]
    units = np.stack([decode_image(str(f), size, CROP) for f in files]).astype(np.float32) / 255.0
    stats, names = image_statistics(units, ["R", "G", "B"])
    return {"features": names, "feature_mean": stats.mean(0).tolist(), "feature_std": stats.std(0).tolist()}


def write_model_folder(folder: Path, spec, class_names: list[str]) -> dict:
    """A model folder in the exported format (model.pt, arch.json, card.json) with freshly initialised weights and
    the per-chunk work of a real card (training-image statistics for domain_z)."""
    import torch

    from synthesis.data.preprocessing import PreprocessingConfig
    from synthesis.models.builder import build_model, spec_cost
    from synthesis.models.package import save_model

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = build_model(spec).eval()
    config = PreprocessingConfig(image_size=spec.image_size, crop=CROP, channels=("R", "G", "B"), mean=(0.1,) * 3,
                                 std=(0.15,) * 3, class_names=tuple(class_names))
    save_model(folder / "model.pt", net, spec, config)
    (folder / "arch.json").write_text(json.dumps(spec.to_dict()))
    params, flops = spec_cost(spec)
    card = {"class_names": class_names, "spec_hash": spec.spec_hash(), "created": "bench", "trial": 0, "study": "bench",
            "flops_per_image": flops,
            "input": {"config": config.to_dict(), "crop_fraction": CROP, "domain": reference_domain(spec.image_size)},
            "extra_inputs": {"names": [], "mean": [], "std": []}, "flips_allowed": True, "mirror_pairs": []}
    (folder / "card.json").write_text(json.dumps(card))
    from galaxy_synth.export import write_onnx  # model.onnx as export writes it, so `--engine auto` can choose it
    from galaxy_synth.predict import load_model_dir

    onnx = write_onnx(load_model_dir(folder).model, spec, folder / "model.onnx")
    return {"params": params, "mflops": flops / 1e6, "onnx": onnx}


def models(work: Path, sizes: list[int], small_arch: str | None = None) -> dict[str, dict]:
    """The small model (``small_arch``: an ``arch_json`` from a ground-truth CSV, e.g. a knee model; default a
    searched-style residual 2×16, 2×32, 1×64) and ResNet-18, at each size."""
    import dataclasses

    from synthesis.models.spec import ArchSpec, ReferenceSpec, StageSpec

    classes = ["elliptical", "spiral", "edge_on", "merger"]
    out = {}
    for size in sizes:
        if small_arch:
            small = dataclasses.replace(ArchSpec.from_json(small_arch), num_classes=4, image_size=size)
        else:
            small = ArchSpec(num_classes=4, stages=(StageSpec(2, 16), StageSpec(2, 32), StageSpec(1, 64)), block="residual",
                             image_size=size)
        for name, spec in ((f"small-{size}px", small), (f"resnet18-{size}px", ReferenceSpec("resnet18", 4, image_size=size))):
            out[name] = {"folder": str(work / name), **write_model_folder(work / name, spec, classes)}
    return out


def catalogue(work: Path, n: int) -> Path:
    files = sorted(str(p) for p in (GZ1 / "images").glob("*.jpg")) or sorted(str(p) for p in GZ1.rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no gz1_dev images under {GZ1}: this bench reads ../shared/data/gz1_dev")
    rows = [files[i % len(files)] for i in range(n)]
    path = work / f"catalogue-{n}.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(n)], "file": rows}).to_csv(path, index=False)
    return path


def _decode_only(job: tuple[list[str], int]) -> int:
    from synthesis.data.decode import decode_image

    paths, size = job
    for p in paths:
        decode_image(p, size, CROP)
    return len(paths)


def decode_ceiling(cat: Path, size: int, workers: int, chunk: int = 1024) -> dict:
    """Images/s of decode + crop + resize alone, ``workers`` processes, chunks as predict cuts them."""
    paths = pd.read_csv(cat)["file"].tolist()
    jobs = [(paths[i:i + chunk], size) for i in range(0, len(paths), chunk)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = sum(pool.map(_decode_only, jobs))
    wall = time.perf_counter() - t0
    return {"images": done, "wall_s": wall, "images_per_s": done / wall}


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (from /proc), in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def run_predict(model: str, cat: Path, out: Path, workers: int, kill_after_rows: int | None = None,
                chunk_size: int = 1024, engine: str = "auto") -> dict:
    """One ``galaxy-synth predict`` child: wall, images/s, peak tree RSS; optionally SIGKILLed after some rows."""
    cmd = [sys.executable, "-m", "galaxy_synth", "predict", "--model", model, "--catalogue", str(cat), "--workers",
           str(workers), "--chunk-size", str(chunk_size), "--engine", engine, "--no-progress", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    peak, journal = 0.0, out.with_name(out.name + ".progress.json")
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        if kill_after_rows is not None and journal.is_file():
            try:
                if json.loads(journal.read_text())["rows"] >= kill_after_rows:
                    os.killpg(proc.pid, signal.SIGKILL)
            except (json.JSONDecodeError, KeyError):
                pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise SystemExit(f"predict failed: {stderr[-2000:]}")
    n = len(pd.read_csv(cat, usecols=["id"]))
    return {"wall_s": wall, "images_per_s": n / wall, "peak_rss_mb": peak, "exit": proc.returncode, "stdout": stdout.strip()}


def per_image_split(model: str, cat: Path, count: int = 300) -> dict:
    """Milliseconds per image, one thread: JPEG decode, crop+resize, model (batch 64)."""
    import math

    import torch
    from PIL import Image

    from galaxy_synth.predict import load_model_dir, predict_probabilities
    from synthesis.data.decode import _to_rgb_array, centre_crop_resize

    torch.set_num_threads(1)
    loaded = load_model_dir(model)
    size = loaded.config.image_size
    paths = pd.read_csv(cat)["file"].tolist()[:count]
    decoded, t_decode, t_prep = [], 0.0, 0.0
    for p in paths:
        t0 = time.perf_counter()
        with Image.open(p) as img:
            need = int(math.ceil(size / CROP))
            img.draft(img.mode, (need, need))  # what predict's decoder does for JPEG
            img.load()
            arr = _to_rgb_array(img)
        t1 = time.perf_counter()
        decoded.append(centre_crop_resize(arr, size, CROP).astype(np.float32) / 255.0)
        t_decode += t1 - t0
        t_prep += time.perf_counter() - t1
    images = np.stack(decoded)
    out = {"decode_ms": t_decode / count * 1000, "crop_resize_ms": t_prep / count * 1000}
    for precision in ("fp32", "bf16"):
        predict_probabilities(loaded, images[:64], np.zeros((64, 0), np.float32), precision=precision)  # warm-up
        t0 = time.perf_counter()
        predict_probabilities(loaded, images, np.zeros((len(images), 0), np.float32), precision=precision)
        out[f"model_ms_{precision}"] = (time.perf_counter() - t0) / count * 1000
    if (Path(model) / "model.onnx").is_file():
        from galaxy_synth.predict import OnnxModel

        onnx = OnnxModel.load(loaded, threads=1)
        onnx.probabilities(images[:64], np.zeros((64, 0), np.float32))  # warm-up
        t0 = time.perf_counter()
        onnx.probabilities(images, np.zeros((len(images), 0), np.float32))
        out["model_ms_onnx_fp32"] = (time.perf_counter() - t0) / count * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000, help="catalogue rows for the small-model cases")
    ap.add_argument("--reference-images", type=int, default=3000, help="rows for the ResNet-18 cases (slower)")
    ap.add_argument("--big", type=int, default=100000, help="rows for the at-scale run, memory and kill -9 (0: skip)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", default=None, help="only these model cases (e.g. resnet18-32px); no at-scale run")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--small-arch", default=None, metavar="JSON",
                    help="the small model's architecture, as an arch_json column of bench/ground_truth/*.csv holds it")
    ap.add_argument("--pairs", type=int, default=0, help="more (ceiling, predict) pairs at scale, back to back")
    ap.add_argument("--out", default="docs/catalogue_throughput.json")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="catalogue-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    folders = models(work, args.sizes, args.small_arch)
    cats = {"small": catalogue(work, args.images), "resnet18": catalogue(work, args.reference_images)}
    results: dict = {"machine_cores": os.cpu_count(), "models": folders, "cases": []}
    tiny = work / "catalogue-10.csv"
    pd.read_csv(cats["small"]).head(10).to_csv(tiny, index=False)
    results["startup_s"] = run_predict(folders[f"small-{args.sizes[0]}px"]["folder"], tiny, work / "tiny.csv", 1)["wall_s"]
    for name, info in folders.items():
        if args.only and name not in args.only:
            continue
        kind, size = name.split("-")[0], int(name.split("-")[1][:-2])
        cat = cats[kind]
        split = per_image_split(info["folder"], cat)
        for cores in args.cores:
            ceiling = decode_ceiling(cat, size, cores)
            # the reference's catalogue is short: smaller chunks so that every core gets some
            run = run_predict(info["folder"], cat, work / f"{name}-{cores}.csv", cores,
                              chunk_size=1024 if kind == "small" else 128)
            case = {"model": name, "size": size, "cores": cores, "images": len(pd.read_csv(cat, usecols=["id"])),
                    "predict_images_per_s": run["images_per_s"], "decode_only_images_per_s": ceiling["images_per_s"],
                    "ceiling_over_predict": ceiling["images_per_s"] / run["images_per_s"], "peak_rss_mb": run["peak_rss_mb"],
                    "per_image_ms_one_thread": split}
            results["cases"].append(case)
            print(json.dumps(case), flush=True)
    if args.big and not args.only:
        cat = catalogue(work, args.big)
        model = folders[f"small-{args.sizes[0]}px"]["folder"]
        cores = max(args.cores)
        ceiling = decode_ceiling(cat, args.sizes[0], cores)
        with_torch = run_predict(model, cat, work / "big-torch.csv", cores, engine="torch")  # the engines side by side
        whole = run_predict(model, cat, work / "big.csv", cores)
        killed_out = work / "big-killed.csv"
        first = run_predict(model, cat, killed_out, cores, kill_after_rows=args.big // 2)
        second = run_predict(model, cat, killed_out, cores)
        got, clean = pd.read_csv(killed_out), pd.read_csv(work / "big.csv")
        results["at_scale"] = {
            "images": args.big, "model": f"small-{args.sizes[0]}px", "cores": cores,
            "predict_images_per_s": whole["images_per_s"], "decode_only_images_per_s": ceiling["images_per_s"],
            "ceiling_over_predict": ceiling["images_per_s"] / whole["images_per_s"], "peak_rss_mb": whole["peak_rss_mb"],
            "engine_torch": {"predict_images_per_s": with_torch["images_per_s"], "peak_rss_mb": with_torch["peak_rss_mb"],
                             "ceiling_over_predict": ceiling["images_per_s"] / with_torch["images_per_s"]},
            "kill9": {"killed_exit": first["exit"], "resume_stdout": second["stdout"], "rows": len(got),
                      "unique_ids": int(got["id"].nunique()), "equal_to_uninterrupted": bool(got.equals(clean))}}
        print(json.dumps(results["at_scale"]), flush=True)
        results["pairs"] = []
        for rep in range(args.pairs):
            c = decode_ceiling(cat, args.sizes[0], cores)
            r = run_predict(model, cat, work / f"big-pair{rep}.csv", cores)
            results["pairs"].append({"ceiling_images_per_s": c["images_per_s"], "predict_images_per_s": r["images_per_s"],
                                     "ceiling_over_predict": c["images_per_s"] / r["images_per_s"], "peak_rss_mb": r["peak_rss_mb"]})
            print(json.dumps(results["pairs"][-1]), flush=True)
    results["command"] = "bench/catalogue_throughput.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
