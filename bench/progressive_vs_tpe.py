"""Progressive growth vs TPE at equal CPU time: full-training accuracy of each strategy's top-3.

CPU time of a strategy = the summed wall time of its finished trials (``datetime_complete -
datetime_start``: training, evaluation, zero-cost scores), one trial at a time on the same
machine. The progressive study stops by itself; TPE gets the same time: its trials in the order
they ran, up to the progressive total. Each side's top-3 is chosen by its own study value (what
the strategy itself would hand over: TPE by the composite it optimised, progressive by 1-epoch
validation accuracy) — not by a calibration fitted on these trials' ground truth, which would
leak. The top-3 are then trained from scratch with the same full budget and loop and scored on the
same untouched test split (results land in the ground-truth table, so a rerun reuses them). The
whole 60-trial TPE study's top-3 is shown too, for what more time buys.

Prerequisites: the TPE study (``synth``), and the progressive study on the same data and seed:

    .venv/bin/galaxy-synth synth --data ../shared/data/gz1_dev --merge spiral_cw,spiral_acw=spiral \\
        --drop dont_know --size 32 --results results/gz1 --study gz1-32px-progressive \\
        --strategy progressive --objective val_acc
    .venv/bin/python bench/progressive_vs_tpe.py --results results/gz1 --tpe-study gz1-32px \\
        --progressive-study gz1-32px-progressive --full-epochs 15
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import optuna
from optuna.trial import TrialState

from synthesis.full_training import FullTrainingJob, FullTrainingSettings, open_ground_truth, stored_or_trained
from synthesis.models.spec import ArchSpec
from synthesis.search.storage import load_existing_study
from synthesis.search.study import reopen_study
from synthesis.locations import default_storage_url
from synthesis.settings import STUDY_ATTR


def trial_seconds(t: optuna.trial.FrozenTrial) -> float:
    if t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def top_by_value(trials: list[optuna.trial.FrozenTrial], k: int, maximize: bool) -> list[optuna.trial.FrozenTrial]:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(done, key=lambda t: t.value, reverse=maximize)[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/gz1")
    ap.add_argument("--tpe-study", default="gz1-32px")
    ap.add_argument("--progressive-study", default="gz1-32px-progressive")
    ap.add_argument("--full-epochs", type=int, default=15)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = Path(args.results)
    storage = default_storage_url(results)
    t0 = time.time()

    opened = reopen_study(storage, args.tpe_study, results, progress=False)
    tpe, attrs, prep = opened.study, opened.attrs, opened.prepared()
    prog = load_existing_study(args.progressive_study, storage)
    plan = attrs["plan"]
    if prog.user_attrs[STUDY_ATTR]["plan"]["test"] != plan["test"]:
        raise SystemExit("the progressive study has another test split: create it with the same data and --seed")
    tpe_trials = sorted(tpe.get_trials(deepcopy=False), key=lambda t: t.number)
    prog_trials = prog.get_trials(deepcopy=False)
    budget = sum(trial_seconds(t) for t in prog_trials)
    spent, within = 0.0, []
    for t in tpe_trials:
        if spent + trial_seconds(t) > budget:
            break
        spent += trial_seconds(t)
        within.append(t)

    store, training = open_ground_truth(storage), FullTrainingSettings.of(opened.settings, args.full_epochs, args.seed)

    def scored(study_name: str, trials: list[optuna.trial.FrozenTrial]) -> list[dict]:
        rows = []
        under = replace(training, study_name=study_name, weights_dir=results / "ground_truth" / study_name)
        for t in trials:
            rec, _, _ = stored_or_trained(store, under, FullTrainingJob(t.number, args.seed), t.user_attrs, prep)
            rows.append({"trial": t.number, "study_value": t.value,
                         "architecture": ArchSpec.from_dict(t.user_attrs["arch"]).describe(),
                         "accuracy": rec.accuracy, "balanced_accuracy": rec.balanced_accuracy, "macro_f1": rec.macro_f1,
                         "full_train_seconds": rec.wall_seconds})
        return rows

    maximize = tpe.direction == optuna.study.StudyDirection.MAXIMIZE
    arms = [
        ("progressive growth", args.progressive_study, prog_trials, budget),
        ("TPE, same CPU time", args.tpe_study, within, spent),
        ("TPE, whole study", args.tpe_study, tpe_trials, sum(trial_seconds(t) for t in tpe_trials)),
    ]
    out_arms = []
    for name, study_name, trials, seconds in arms:
        top = top_by_value(trials, args.top, maximize if study_name == args.tpe_study else True)
        rows = scored(study_name, top)
        out_arms.append({"strategy": name, "study": study_name, "trials": len(trials),
                         "completed": sum(t.state == TrialState.COMPLETE for t in trials),
                         "cpu_seconds": round(seconds, 1), "top": rows})
    out = {"full_epochs": args.full_epochs, "seed": args.seed, "tpe_objective": attrs["settings"].get("objective"),
           "arms": out_arms, "seconds": round(time.time() - t0),
           "command": " ".join(["python", "bench/progressive_vs_tpe.py", *sys.argv[1:]])}
    (results / "progressive_vs_tpe.json").write_text(json.dumps(out, indent=2))
    print("| strategy | trials | search CPU time | top-3 (trial: test acc / balanced acc) | best test acc | best balanced acc |")
    print("|---|---|---|---|---|---|")
    for arm in out_arms:
        tops = "; ".join(f"{r['trial']}: {r['accuracy']:.3f} / {r['balanced_accuracy']:.3f}" for r in arm["top"])
        print(f"| {arm['strategy']} | {arm['trials']} | {arm['cpu_seconds'] / 60:.1f} min | {tops} | "
              f"{max(r['accuracy'] for r in arm['top']):.3f} | {max(r['balanced_accuracy'] for r in arm['top']):.3f} |")
    for arm in out_arms:
        for r in arm["top"]:
            print(f"  {arm['strategy']}: trial {r['trial']} `{r['architecture']}`")


if __name__ == "__main__":
    main()
