"""Trial pipeline vs a seed-style loader on real images, same architecture, one run.

Ours: images decoded once (cached uint8), batches indexed from memory, augmented as tensors.
Seed-style: every epoch re-opens each JPEG with PIL and runs torchvision transforms inside a
torch DataLoader (what the seed systems did). Both train the same architecture with the same
optimiser for the same epochs on the same train/val indices and validate after each epoch.

    .venv/bin/python bench/trial_throughput.py                     # gz1_dev from ../shared
    .venv/bin/python bench/trial_throughput.py --data DIR --epochs 2 --workers 0 2

Prints a Markdown table (paste into docs/BENCHMARKS.md) and writes results/bench/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from synthesis.data.dataset import ClassMap, load_dataset
from synthesis.data.preparation import build_trial_data, data_plan
from synthesis.data.settings import DataSettings
from synthesis.models.builder import build_model, count_params
from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig
from synthesis.settings import StudySettings
from synthesis.training.loop import train_model
from synthesis.training.recipe import make_optimizer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gz1_dev"

ARCHS = {
    "small-plain": dict(stages=(StageSpec(1, 16), StageSpec(1, 32), StageSpec(1, 64)), block="plain", stem_width=16),
    "medium-residual": dict(stages=(StageSpec(2, 32), StageSpec(2, 64), StageSpec(1, 96)), block="residual", stem_width=16),
}


class SeedStyleDataset(Dataset):
    """PIL decode + torchvision transforms on every access, as the seed code did."""

    def __init__(self, files, labels, size, crop_px, train, mean, std):
        self.files, self.labels = files, labels
        aug = [transforms.RandomHorizontalFlip(), transforms.RandomVerticalFlip(), transforms.RandomRotation(90)] if train else []
        self.tf = transforms.Compose([transforms.CenterCrop(crop_px), transforms.Resize(size), *aug,
                                      transforms.ToTensor(), transforms.Normalize(mean, std)])

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with Image.open(self.files[i]) as img:
            return self.tf(img.convert("RGB")), int(self.labels[i])


def warm_up(spec, size, batch_size):
    model = build_model(spec).to(memory_format=torch.channels_last)
    for bs in (batch_size, 256):
        x = torch.randn(bs, 3, size, size).contiguous(memory_format=torch.channels_last)
        model(x).sum().backward()
        model(x.contiguous()).sum().backward()


def seed_style_run(model, files, labels, plan, size, crop_px, cfg, epochs, workers, mean, std):
    tr = SeedStyleDataset([files[i] for i in plan["trial_train"]], labels[plan["trial_train"]], size, crop_px, True, mean, std)
    va = SeedStyleDataset([files[i] for i in plan["trial_val"]], labels[plan["trial_val"]], size, crop_px, False, mean, std)
    tl = DataLoader(tr, batch_size=cfg.batch_size, shuffle=True, num_workers=workers, drop_last=False)
    vl = DataLoader(va, batch_size=256, num_workers=workers)
    opt = make_optimizer(model, cfg)
    loss_fn = torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in tl:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in vl)
    return time.perf_counter() - t0, correct / len(va)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers for the seed-style runs")
    ap.add_argument("--results", default="results/bench")
    args = ap.parse_args()
    if not Path(args.data).exists():
        print(f"skip: {args.data} is absent (this benchmark reads real images from ../shared)")
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    import tempfile

    cache = Path(tempfile.mkdtemp(prefix="gs-bench-cache-"))  # fresh: the first load below is a cold decode
    cmap = ClassMap.parse(["spiral_cw,spiral_acw=spiral"], ["dont_know"])

    t0 = time.perf_counter()
    data = load_dataset(args.data, size=args.size, class_map=cmap, cache_dir=cache, progress=False)
    first_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = load_dataset(args.data, size=args.size, class_map=cmap, cache_dir=cache, progress=False)
    cached_load = time.perf_counter() - t0

    settings = StudySettings(data=args.data, size=args.size)
    plan = data_plan(data, DataSettings.of(settings))
    trial_data = build_trial_data(data, plan, torch.device("cpu"))
    import pandas as pd

    df = pd.read_csv(Path(args.data) / "labels.csv")
    df = df[df["label_name"] != "dont_know"].reset_index(drop=True)
    files = [str(Path(args.data) / ("images" if (Path(args.data) / "images").is_dir() else "") / f) for f in df["file"]]
    assert len(files) == len(data)
    side = Image.open(files[0]).size[0]
    crop_px = int(round(side * data.crop))
    cfg = TrainConfig(optimizer="adamw", lr=1e-3, batch_size=64, augment=True)
    n_train, n_val = len(plan["trial_train"]), len(plan["trial_val"])

    rows = []
    for name, kw in ARCHS.items():
        spec = ArchSpec(num_classes=len(data.class_names), image_size=args.size, n_extra=0, **kw)
        warm_up(spec, args.size, cfg.batch_size)  # oneDNN builds kernels per shape: don't time that for either side
        torch.manual_seed(0)
        model = build_model(spec)
        t0 = time.perf_counter()
        hist = train_model(model, trial_data.train, cfg, args.epochs, normalizer=trial_data.normalizer,
                           num_classes=len(data.class_names), val=trial_data.val, mirror_pairs=trial_data.mirror_pairs)
        ours = time.perf_counter() - t0
        row = {"arch": name, "params": count_params(model), "ours_s": ours,
               "ours_img_s": n_train * args.epochs / ours, "ours_val_acc": hist.last.val_acc}
        for w in args.workers:
            torch.manual_seed(0)
            model = build_model(spec)
            secs, acc = seed_style_run(model, files, data.labels, plan, args.size, crop_px, cfg, args.epochs, w,
                                       trial_data.normalizer.mean, trial_data.normalizer.std)
            row[f"seed_w{w}_s"] = secs
            row[f"ratio_w{w}"] = secs / ours
        rows.append(row)
        print(json.dumps(row), flush=True)

    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "data": args.data, "n_train": n_train, "n_val": n_val, "epochs": args.epochs, "size": args.size,
        "first_load_s": first_load, "cached_load_s": cached_load, "rows": rows,
        "command": "python bench/trial_throughput.py " + " ".join(sys.argv[1:]),
    }
    (out / "throughput.json").write_text(json.dumps(report, indent=2))
    print(f"\ndataset: {len(data)} images; first load (decode + cache) {first_load:.1f} s, cached load {cached_load:.2f} s")
    print(f"per trial: {n_train} train images × {args.epochs} epochs + {n_val} val images per epoch\n")
    head = "| architecture | params | ours: s/trial | ours: train img/s | " + " | ".join(
        f"seed-style ({w} workers): s/trial | ratio" for w in args.workers) + " |"
    print(head)
    print("|" + "---|" * (4 + 2 * len(args.workers)))
    for r in rows:
        cells = [r["arch"], f"{r['params']:,}", f"{r['ours_s']:.1f}", f"{r['ours_img_s']:.0f}"]
        for w in args.workers:
            cells += [f"{r[f'seed_w{w}_s']:.1f}", f"{r[f'ratio_w{w}']:.1f}×"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
