"""How repeatable is the ground truth itself? Retrain ground-truth architectures with another seed.

A proxy can rank architectures no better than the full training it is scored against ranks them
against itself. This trains the ``--archs`` fastest ground-truth architectures of a study again
with ``--other-seed`` (same budget, loop, split; only initialisation and batch order change),
and reports scipy's Spearman ρ and Kendall τ between the two seeds' test metrics, the mean
absolute change, and the binomial standard error of a test accuracy on this test split. Results
go to the ground-truth table under the same study and trial with the other seed (rerun = reuse).

    .venv/bin/python bench/ground_truth_noise.py --results results/gz1 --study gz1-32px --full-epochs 15 --archs 12
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np
from _common import fastest_ground_truth
from scipy import stats

from synthesis.full_training import FullTrainingJob, FullTrainingSettings, stored_or_trained

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/gz1")
    ap.add_argument("--study", default="gz1-32px")
    ap.add_argument("--full-epochs", type=int, default=15)
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0, help="the seed the ground truth was trained with")
    ap.add_argument("--other-seed", type=int, default=1)
    args = ap.parse_args()
    results = Path(args.results)
    opened, store, gt, trials = fastest_ground_truth(results, args.study, args.full_epochs, args.seed, args.archs)
    prep, attrs = opened.prepared(), opened.attrs
    if len(gt) < 4:
        raise SystemExit(f"only {len(gt)} ground-truth rows with seed {args.seed}: too few to rank")
    training = replace(FullTrainingSettings.of(opened.settings, args.full_epochs, args.other_seed), progress=False)
    rows = []
    for _, first in gt.iterrows():
        number = int(first["trial_number"])
        rec, _, _ = stored_or_trained(store, training, FullTrainingJob(number, args.other_seed),
                                      trials[number].user_attrs, prep)
        rows.append({"trial": number, **{f"{m}_seed{args.seed}": float(first[m]) for m in METRICS},
                     **{f"{m}_seed{args.other_seed}": getattr(rec, m) for m in METRICS},
                     "seconds": round(rec.wall_seconds)})
        print(json.dumps(rows[-1]), flush=True)
    n_test = len(attrs["plan"]["test"])
    summary = {}
    for m in METRICS:
        a = np.array([r[f"{m}_seed{args.seed}"] for r in rows])
        b = np.array([r[f"{m}_seed{args.other_seed}"] for r in rows])
        ci = stats.bootstrap((a, b), lambda x, y: stats.spearmanr(x, y).statistic, paired=True, vectorized=False,
                             n_resamples=2000, method="percentile", random_state=0).confidence_interval
        summary[m] = {"spearman": float(stats.spearmanr(a, b).statistic), "spearman_ci95": [float(ci.low), float(ci.high)],
                      "kendall": float(stats.kendalltau(a, b).statistic),
                      "mean_abs_change": float(np.mean(np.abs(a - b))), "spread_seed_a": float(a.max() - a.min()),
                      "std_seed_a": float(a.std(ddof=1))}
    acc = float(np.mean([r[f"accuracy_seed{args.seed}"] for r in rows]))
    out = {"study": args.study, "full_epochs": args.full_epochs, "seeds": [args.seed, args.other_seed],
           "test_images": n_test, "binomial_se_of_accuracy": math.sqrt(acc * (1 - acc) / n_test),
           "rows": rows, "summary": summary,
           "command": " ".join(["python", "bench/ground_truth_noise.py", *sys.argv[1:]])}
    (results / "ground_truth_noise.json").write_text(json.dumps(out, indent=2))
    print(f"{len(rows)} architectures, {n_test} test images, binomial SE of accuracy {out['binomial_se_of_accuracy']:.4f}")
    for m, s in summary.items():
        print(f"{m}: seed-vs-seed Spearman {s['spearman']:.3f} [{s['spearman_ci95'][0]:.2f}, {s['spearman_ci95'][1]:.2f}], Kendall {s['kendall']:.3f}, "
              f"mean |change| {s['mean_abs_change']:.4f}, std across archs {s['std_seed_a']:.4f}")


if __name__ == "__main__":
    main()
