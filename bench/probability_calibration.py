"""Calibrated probabilities on real galaxies (docs/BENCHMARKS.md §20): expected calibration error before and after
the temperature export fits, over every fully trained gz1_dev model a results folder holds; and bf16 against fp32.

For each stored full training (``correlate``'s and the anytime benchmark's ground truth, weights kept)
of the studies named, this does what ``galaxy-synth export`` does: fits the temperature on the
validation split (single view, and for the TTA average) and measures the ECE (15 bins) on the
test split before and after; and runs the test split under bf16 autocast to report how far its
probabilities move from fp32 and how often the predicted class changes. No training: inference only.

    .venv/bin/python bench/probability_calibration.py --results ../runs/anytime --studies 'anytime-gz1-*' --out docs/probability_calibration.json
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import numpy as np
import torch


def ece_floor_and_interval(probabilities: np.ndarray, labels: np.ndarray, draws: int = 200,
                           seed: int = 0) -> tuple[float, list[float]]:
    """What a test split of this size can resolve: the median ECE of these very probabilities when the labels
    are drawn from them (a perfectly calibrated model still scores this much), and a bootstrap 95% interval
    of the measured ECE over test images."""
    from synthesis.training.temperature import reliability

    rng = np.random.default_rng(seed)
    cumulative = probabilities.cumsum(1)
    floor = []
    for _ in range(draws):
        drawn = (rng.random((len(labels), 1)) > cumulative).sum(1).clip(0, probabilities.shape[1] - 1)
        floor.append(reliability(probabilities, drawn).ece)
    boot = []
    for _ in range(draws):
        idx = rng.integers(0, len(labels), len(labels))
        boot.append(reliability(probabilities[idx], labels[idx]).ece)
    return float(np.median(floor)), [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]


def measure(opened, store, name: str) -> list[dict]:
    from synthesis.full_training import load_weights
    from synthesis.training.temperature import calibrate_network
    from synthesis.training.views import dihedral_views, mirror_permutation

    prep = opened.prepared()
    val, test = prep.split("val", torch.device("cpu")), prep.split("test", torch.device("cpu"))
    views = dihedral_views(prep.allow_flips)
    perm = mirror_permutation(prep.class_names, prep.preprocessing.mirror_pairs)
    rows = []
    for record in store.records(name):
        if not Path(record.weights_path).is_file():
            continue
        net = load_weights(record).eval()
        c = calibrate_network(net, prep.normalizer, val, test, views, perm)
        with torch.inference_mode():
            x = prep.normalizer(test.x)
            extra = test.extra
            forward = (lambda v: net(v, extra)) if extra.shape[1] else net
            fp32 = torch.softmax(forward(x).float() / c.temperature, 1)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16 = torch.softmax(forward(x).float() / c.temperature, 1)
        labels = test.y.cpu().numpy()
        floor, ci = ece_floor_and_interval(fp32.numpy(), labels)
        rows.append({"study": name, "trial": record.trial_number, "seed": record.seed, "epochs": record.epochs,
                     "ece_after_ci95": ci, "ece_floor_if_calibrated": floor,
                     "accuracy": record.accuracy, "temperature": c.temperature, "temperature_tta": c.temperature_tta,
                     "ece_before": c.test_before.ece, "ece_after": c.test_after.ece,
                     "ece_tta_before": c.tta_before.ece, "ece_tta_after": c.tta_after.ece,
                     "bf16_max_abs_dprob": float((fp32 - bf16).abs().max()),
                     "bf16_mean_abs_dprob": float((fp32 - bf16).abs().mean()),
                     "bf16_changed_predictions": float((fp32.argmax(1) != bf16.argmax(1)).float().mean()),
                     "n_val": len(val), "n_test": len(test)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    import optuna

    from synthesis.full_training import open_ground_truth
    from synthesis.search.study import reopen_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="../runs/anytime", help="a results folder (its study.db and weights)")
    ap.add_argument("--studies", nargs="+", default=["anytime-gz1-*"], help="study names or shell patterns")
    ap.add_argument("--out", default="docs/probability_calibration.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = Path(args.results)
    storage = f"sqlite:///{results / 'study.db'}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    chosen = [n for n in names if any(fnmatch.fnmatch(n, p) for p in args.studies)]
    store = open_ground_truth(storage)
    rows = []
    for name in chosen:
        if not store.records(name):
            continue
        rows += measure(reopen_study(storage, name, results, progress=False), store, name)
    if not rows:
        raise SystemExit(f"no stored full trainings with weights in {storage} for {args.studies}")
    summary = {"models": len(rows), "studies": sorted({r["study"] for r in rows}),
               **{f"median_{k}": float(np.median([r[k] for r in rows])) for k in
                  ("temperature", "ece_before", "ece_after", "ece_tta_before", "ece_tta_after", "bf16_max_abs_dprob",
                   "bf16_changed_predictions")},
               "share_with_ece_halved": float(np.mean([r["ece_after"] <= r["ece_before"] / 2 for r in rows])),
               "median_ece_floor_if_calibrated": float(np.median([r["ece_floor_if_calibrated"] for r in rows])),
               "share_with_ece_before_below_twice_the_floor": float(np.mean(
                   [r["ece_before"] < 2 * r["ece_floor_if_calibrated"] for r in rows])),
               "command": "bench/probability_calibration.py --results " + args.results + " --studies " + " ".join(args.studies),
               "rows": rows}
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
