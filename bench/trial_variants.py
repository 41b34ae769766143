"""Which trial settings make a 2-epoch trial rank full training best: LR schedule and precision.

The architectures of a ground-truth table (each fully trained with 2 seeds) are run again as
2-epoch trials under each variant — constant LR vs a schedule that decays to zero within the
trial's own budget (budget-aware training), fp32 vs bf16 autocast — in one study per variant
(the same trial subsets, the same initialisation seed per architecture). Then, per variant:

* out-of-fold Spearman ρ of the composite (learner chosen inside each fit), of 2-epoch val accuracy
  and of the best single metric against the 2-seed mean test accuracy (and balanced accuracy);
* fp32 vs bf16: Spearman ρ between the two precisions' values of each metric on the same
  architectures (does bf16 change how the proxy ranks?), and the trial time of each.

Every variant's rows (its trial metrics joined with the full-training results they predict) are
written as ground-truth CSVs next to the input table, so calibrations can be fitted on them later.

    .venv/bin/python bench/trial_variants.py --table bench/ground_truth/gz1_dev-gz1-pool.csv \\
        --data ../shared/data/gz1_dev --results /tmp/variants        # ≈ 15-25 min on 2 cores
    .venv/bin/python bench/trial_variants.py --variants fp32-constant-6ep ...   # the second promotion rung
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import pandas as pd

from correlation.calibrate import FEATURES
from correlation.fitting import correlation_report, numeric_features
from galaxy_common.statistics import spearman
from synthesis.full_training import TARGETS, mean_rows_over_seeds, merge_ground_truth_csv
from synthesis.models.spec import ArchSpec, TrainConfig
from synthesis.search.ranking import metrics_table
from synthesis.search.runner import run_study
from synthesis.search.space import SearchSpace
from synthesis.settings import StudySettings
from synthesis.locations import dataset_name

GT_COLUMNS = ("dataset", "data_path", "data_fingerprint", "merge", "drop", "n_train", "n_test", "arch_json",
              "train_config_json", "spec_hash", "strategy", "full_epochs", "gt_seed", "full_schedule", "gt_precision",
              "accuracy", "balanced_accuracy", "macro_f1", "test_loss", "full_train_seconds", "gt_device", "measured")
VARIANTS = {
    "fp32-constant": {"precision": "fp32", "schedule": "constant", "warmup": 0.0},
    "fp32-cosine": {"precision": "fp32", "schedule": "cosine", "warmup": 0.1},
    "bf16-constant": {"precision": "bf16", "schedule": "constant", "warmup": 0.0},
    "bf16-cosine": {"precision": "bf16", "schedule": "cosine", "warmup": 0.1},
    # Promotion's second rung: the pool's architectures as 6-epoch trials, for a rung-aware calibration (#25).
    # Not a default variant, and its table stays out of the 2-epoch leave-one-study-out pool (other signal levels).
    "fp32-constant-6ep": {"precision": "fp32", "schedule": "constant", "warmup": 0.0, "epochs": 6},
}
DEFAULT_VARIANTS = tuple(name for name, v in VARIANTS.items() if "epochs" not in v)  # the 2-epoch trial settings


def arch_key(arch_json: str, config_json: str) -> str:
    cfg = json.loads(config_json)
    cfg = {k: cfg[k] for k in ("optimizer", "lr", "weight_decay", "batch_size", "momentum", "loss", "label_smoothing")}
    return json.dumps({"arch": json.loads(arch_json), "cfg": cfg}, sort_keys=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="bench/ground_truth/gz1_dev-gz1-pool.csv")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gz1_dev"))
    ap.add_argument("--results", default="results/bench/variants")
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, default=2, help="ground-truth seeds averaged per architecture")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    gt_rows = pd.read_csv(args.table)
    first = gt_rows.iloc[0]
    gt = mean_rows_over_seeds(gt_rows, args.seeds)
    gt["key"] = [arch_key(a, c) for a, c in zip(gt["arch_json"], gt["train_config_json"])]
    space = SearchSpace()
    out: dict = {"table": args.table, "architectures": len(gt), "ground_truth_seeds": args.seeds, "variants": {},
                 "command": " ".join(["python", "bench/trial_variants.py", *sys.argv[1:]])}
    tables = {}
    for name in args.variants:
        v = {"epochs": int(first["trial_epochs"]), **VARIANTS[name]}
        # No pruner: every architecture is measured whole (a pruned one has no metrics to join; 6-epoch trials were
        # pruned by the median rule in a first attempt). One process, as measured: trial seconds compare across variants.
        settings = StudySettings(data=args.data, size=int(first["trial_size"]), crop=None if pd.isna(first["trial_crop"]) else float(first["trial_crop"]),
                                 merge=[m for m in str(first["merge"]).split(";") if m and m != "nan"],
                                 drop=[d for d in str(first["drop"]).split(";") if d and d != "nan"],
                                 max_samples=int(first["trial_max_samples"]), val_subset=int(first["trial_val_subset"]),
                                 seed=int(first["trial_seed"]), max_mflops=0,
                                 trials=len(gt), objective="val_acc", sampler="random", pruner="none", results=args.results,
                                 study=f"variant-{name}", progress=False, device="cpu", workers=1, **v)
        t0 = time.time()

        def enqueue(opened) -> None:
            have = {t.params.get("lr") for t in opened.study.get_trials(deepcopy=False)}
            for a, c in zip(gt["arch_json"], gt["train_config_json"]):
                params = space.params_of(ArchSpec.from_dict(json.loads(a)), TrainConfig.from_dict(json.loads(c)))
                if params["lr"] not in have:  # resumable: what is queued or done already is not queued again
                    opened.study.enqueue_trial(params)

        study = run_study(settings, on_ready=enqueue).study
        table = metrics_table(study)
        table = table[table["finished"]].copy()
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        table["key"] = [arch_key(json.dumps(trials[n].user_attrs["arch"]), json.dumps(trials[n].user_attrs["train_config"]))
                        for n in table["trial"]]
        table["trial_seconds"] = [trials[n].user_attrs.get("wall_seconds") for n in table["trial"]]
        merged = table.merge(gt[["key", *TARGETS]], on="key")
        tables[name] = merged
        features = [f for f in numeric_features(merged, "accuracy") if f in FEATURES]
        res = {"rows": len(merged), "minutes": round((time.time() - t0) / 60, 1),
               "median_trial_seconds": float(np.median(merged["trial_seconds"]))}
        for target in ("accuracy", "balanced_accuracy"):
            report, _, _ = correlation_report(merged, target, features, repeats=args.repeats)
            res[target] = {"composite": report["composite_spearman_cv"], "composite_ci95": report["composite_spearman_cv_ci95"],
                           "composite_top3_recall": report["composite_top3_recall_cv"],
                           "learners": report["composite_learners_chosen"],
                           "best_single_in_fold": report["best_single_metric_in_fold"]["spearman"],
                           "val_acc_alone": spearman(merged["val_acc"], merged[target]),
                           "val_balanced_acc_alone": spearman(merged["val_balanced_acc"], merged[target])}
        out["variants"][name] = res
        print(json.dumps({name: res}), flush=True)
        # The measurements of this variant, in the ground-truth CSV format, beside the input table.
        pool = gt_rows.assign(key=[arch_key(a, c) for a, c in zip(gt_rows["arch_json"], gt_rows["train_config_json"])])
        pool = pool[["key", *[c for c in GT_COLUMNS if c in pool.columns]]]
        measured = [c for c in table.columns if c in FEATURES or c in ("val_predicted_classes", "collapsed")]
        rows = table[["trial", "key", *measured]].merge(pool, on="key").drop(columns="key")
        rows.insert(0, "study", f"variant-{name}")
        for col in (c for c in gt_rows.columns if c.startswith("trial_")):
            rows[col] = first[col]
        for k, val in v.items():
            rows[f"trial_{k}"] = val
        merge_ground_truth_csv(rows, Path(args.table).with_name(f"{dataset_name(args.data)}-trials-{name}.csv"))
    if "fp32-constant" in tables and "bf16-constant" in tables:
        a, b = (tables[n].set_index("key") for n in ("fp32-constant", "bf16-constant"))
        common = a.index.intersection(b.index)
        metrics = [m for m in FEATURES if m in a.columns and m in b.columns]
        out["bf16_vs_fp32_metric_spearman"] = {m: spearman(a.loc[common, m], b.loc[common, m]) for m in metrics}
        out["bf16_vs_fp32_trial_time"] = float(np.median(a.loc[common, "trial_seconds"] / b.loc[common, "trial_seconds"]))
    Path(args.results).mkdir(parents=True, exist_ok=True)
    (Path(args.results) / "trial_variants.json").write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
