"""The exported top models vs a hand-designed ResNet-18-style net vs random search, same budget, same split.

* galaxy-synth: ``export_top`` of the TPE study (ranked by RESULTS/proxy_weights.json when
  ``correlate`` wrote one), weights reused from ``correlate`` where they exist;
* ResNet-18-style: residual stages 2×64, 2×128, 2×256, 2×512 (stem 64), Adam lr 1e-3, wd 1e-4,
  batch 64 — the seeds' hand-designed baseline — with the same loop, epochs, cosine schedule, loss;
* random search: a study of the same size with ``--sampler random --objective val_acc``; its
  best trial by 2-epoch validation accuracy (what one would pick without a proxy), fully trained.

All full trainings land in the ground-truth table (so a rerun reuses them) and are scored on the
same test split. Prerequisites (commands in docs/BENCHMARKS.md): both studies, and ``correlate``.

    .venv/bin/python bench/export_vs_baselines.py --results results/gz1 --study gz1-32px \\
        --random-study gz1-32px-random --full-epochs 15
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import torch

from galaxy_synth.export import ExportSettings, export_top
from synthesis.full_training import FullTrainingJob, FullTrainingSettings, open_ground_truth, stored_or_trained
from synthesis.models.builder import count_params
from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig
from synthesis.search.storage import load_existing_study
from synthesis.search.study import reopen_study
from synthesis.locations import default_storage_url
from synthesis.settings import STUDY_ATTR
from synthesis.training.loop import evaluate

BASELINE_STUDY = "baseline-resnet18"


class _Baseline:
    """Looks like a trial to ``stored_or_trained``: number + user attrs with the spec and optimiser."""

    number = 0

    def __init__(self, n_classes: int, size: int, n_extra: int, loss: str) -> None:
        spec = ArchSpec(num_classes=n_classes, stages=tuple(StageSpec(2, w) for w in (64, 128, 256, 512)),
                        block="residual", stem_width=64, stem_kernel=3, downsample="stride", dropout=0.0,
                        image_size=size, n_extra=n_extra)
        cfg = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=64, loss=loss)
        self.user_attrs = {"arch": spec.to_dict(), "train_config": cfg.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/gz1")
    ap.add_argument("--study", default="gz1-32px")
    ap.add_argument("--random-study", default="gz1-32px-random")
    ap.add_argument("--full-epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = Path(args.results)
    storage = default_storage_url(results)
    t0 = time.time()
    exported = export_top(ExportSettings(storage, args.study, results, top=3, full_epochs=args.full_epochs, seed=args.seed,
                                         progress=False))

    opened = reopen_study(storage, args.study, results, progress=False)
    study, attrs, data, plan, prep = opened.study, opened.attrs, opened.data, opened.plan, opened.prepared()
    rs_study = load_existing_study(args.random_study, storage)
    if rs_study.user_attrs[STUDY_ATTR]["plan"]["test"] != plan["test"]:
        raise SystemExit("the random-search study has another test split: create it with the same data and --seed")
    test_idx = np.array(plan["test"])
    test = prep.split("test", torch.device("cpu"))
    store, training = open_ground_truth(storage), FullTrainingSettings.of(opened.settings, args.full_epochs, args.seed)
    loss = attrs["settings"].get("loss", "ce")

    def full(study_name: str, trial) -> dict:
        under = replace(training, study_name=study_name, weights_dir=results / "ground_truth" / study_name)
        rec, net, trained = stored_or_trained(store, under, FullTrainingJob(trial.number, args.seed), trial.user_attrs,
                                              prep, need_model=True)
        origin = "trained now" if trained else f"reused ({rec.weights_path})"
        r = evaluate(net.cpu(), test, prep.normalizer, len(data.class_names))
        return {"accuracy": r.accuracy, "balanced_accuracy": r.balanced_accuracy, "macro_f1": r.macro_f1,
                "params": count_params(net), "full_train_seconds": rec.wall_seconds if rec else None, "weights": origin}

    rows = [{"model": f"galaxy-synth rank {e.rank} (trial {e.trial})", "architecture": e.card["architecture"],
             **{k: e.card["test"][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}, "params": e.card["params"],
             "weights": e.card["training"]["weights"]} for e in exported]
    rs_done = [t for t in rs_study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    rs_best = max(rs_done, key=lambda t: t.value)
    rows.append({"model": f"random search best of {len(rs_done)} by 2-epoch val_acc (trial {rs_best.number})",
                 "architecture": ArchSpec.from_dict(rs_best.user_attrs["arch"]).describe(), **full(args.random_study, rs_best)})
    baseline = _Baseline(len(data.class_names), data.size, len(data.extra_names), loss)
    rows.append({"model": "ResNet-18-style baseline", "architecture": ArchSpec.from_dict(baseline.user_attrs["arch"]).describe(),
                 **full(BASELINE_STUDY, baseline)})
    tpe_done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
    out = {"full_epochs": args.full_epochs, "seed": args.seed, "test_images": len(test_idx), "tpe_trials": tpe_done,
           "random_trials": len(rs_done), "rows": rows, "seconds": round(time.time() - t0),
           "command": " ".join(["python", "bench/export_vs_baselines.py", *sys.argv[1:]])}
    (results / "export_vs_baselines.json").write_text(json.dumps(out, indent=2))
    print("| model | architecture | params | test acc | balanced acc | macro-F1 |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | `{r['architecture']}` | {r['params']:,} | {r['accuracy']:.3f} | "
              f"{r['balanced_accuracy']:.3f} | {r['macro_f1']:.3f} |")


if __name__ == "__main__":
    main()
