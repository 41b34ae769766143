"""Which training loss for imbalanced galaxy sets? Same architectures, same budget, three losses.

Takes the ``--archs`` fastest architectures of the study's ground truth (so the cross-entropy
result already exists), fully trains each again with class-weighted cross-entropy and focal loss
(same loop, epochs, seed, split), and reports test accuracy, balanced accuracy and macro-F1 per
loss. Results go to the ground-truth table under ``<study>-loss-<loss>``, so a rerun reuses them.

    .venv/bin/python bench/loss_choice.py --results results/gz1 --study gz1-32px --full-epochs 15 --archs 3
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import pandas as pd
from _common import fastest_ground_truth

from synthesis.full_training import FullTrainingJob, FullTrainingSettings, stored_or_trained
from synthesis.models.spec import TrainConfig

LOSSES = ("ce", "weighted_ce", "focal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/gz1")
    ap.add_argument("--study", default="gz1-32px")
    ap.add_argument("--full-epochs", type=int, default=15)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = Path(args.results)
    opened, store, gt, trials = fastest_ground_truth(results, args.study, args.full_epochs, args.seed, args.archs)
    prep, attrs = opened.prepared(), opened.attrs
    training = replace(FullTrainingSettings.of(opened.settings, args.full_epochs, args.seed), progress=False)
    rows = []
    for number in gt["trial_number"].astype(int):
        base = trials[number].user_attrs
        for loss in LOSSES:
            name = args.study if loss == attrs["settings"].get("loss", "ce") else f"{args.study}-loss-{loss}"
            cfg = TrainConfig.from_dict(base["train_config"]).replace(loss=loss)
            rec, _, _ = stored_or_trained(store, replace(training, study_name=name, weights_dir=training.weights_dir / name),
                                          FullTrainingJob(number, args.seed), {**base, "train_config": cfg.to_dict()}, prep)
            rows.append({"trial": number, "loss": loss, "accuracy": rec.accuracy,
                         "balanced_accuracy": rec.balanced_accuracy, "macro_f1": rec.macro_f1,
                         "seconds": round(rec.wall_seconds)})
            print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    summary = df.groupby("loss")[["accuracy", "balanced_accuracy", "macro_f1"]].mean().round(4)
    print(summary.to_string())
    (results / "loss_choice.json").write_text(json.dumps({"rows": rows, "mean": summary.reset_index().to_dict("records"),
                                                          "full_epochs": args.full_epochs}, indent=2))


if __name__ == "__main__":
    main()
