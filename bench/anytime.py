"""Anytime regret: the model each strategy would export after 5, 15, 30, 60 CPU minutes, fully trained.

Strategies (each a study on the same data and split, each run in a process of its own until its
CPU budget is spent, with two search seeds):

* ``tpe-default``   TPE with the default objective (the calibrated composite where in its domain)
* ``tpe-val_acc``   TPE maximising 2-epoch validation accuracy
* ``tpe-promotion`` TPE, default objective, promotion by successive halving (--fidelities 2,6,18)
* ``random``        random search, picking by 2-epoch validation accuracy
* ``progressive``   progressive growth (children inherit their parent's weights)
* ``resnet18``      no search: the ResNet-18-style baseline, its own full training counted as its cost

CPU time is what the search process used (user + system, all threads, ``time.process_time``),
divided by the cores: "a 30-minute budget on 2 cores" is 60 CPU-minutes, and the figure does
not change when something else shares the machine. At each budget the pick is the top of the
study's own ranking among the trials finished by then (``galaxy-synth export`` would take it);
it is fully trained with 2 seeds (15 epochs, cosine, all training images — the ground truth of
``correlate``), reusing every full training of the same architecture through the ground-truth
store. Regret = best 2-seed mean test accuracy (or balanced accuracy) measured on this data and
split by any arm, minus the pick's. Every full training goes into bench/ground_truth/.

    .venv/bin/python bench/anytime.py run --minutes 30 --seeds 0 1 --jobs 2   # the searches (≈ 2.5 h on 2 cores)
    .venv/bin/python bench/anytime.py evaluate --budgets 5 15 30         # full trainings, regret, plot
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
sys.path.insert(0, str(ROOT))

STRATEGIES = {
    "resnet18": {},
    "progressive": {"strategy": "progressive"},
    "tpe-default": {},
    "random": {"sampler": "random", "objective": "val_acc"},
    "tpe-val_acc": {"objective": "val_acc"},
    "tpe-promotion": {"fidelities": "2,6,18"},
}
DATA = {"data": str(ROOT.parent / "shared" / "data" / "gz1_dev"), "merge": ["spiral_cw,spiral_acw=spiral"],
        "drop": ["dont_know"]}
FULL_EPOCHS = 15
TRAINING_SEEDS = (0, 1)


def settings_for(strategy: str, seed: int, results: str):
    from synthesis.settings import StudySettings

    return StudySettings(**DATA, **STRATEGIES[strategy], study=f"anytime-{strategy}-s{seed}", search_seed=seed,
                         results=results, trials=100_000, progress=False)


def resnet18_attrs(opened) -> dict:
    from synthesis.spec import ArchSpec, StageSpec, TrainConfig

    spec = ArchSpec(num_classes=len(opened.data.class_names), stages=tuple(StageSpec(2, w) for w in (64, 128, 256, 512)),
                    block="residual", stem_width=64, stem_kernel=3, downsample="stride", dropout=0.0,
                    image_size=opened.data.size, n_extra=len(opened.data.extra_names))
    cfg = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=64, loss=opened.settings.loss)
    return {"arch": spec.to_dict(), "train_config": cfg.to_dict()}


def run_one(strategy: str, seed: int, minutes: float, results: str) -> None:
    """One search in this process until it has used ``minutes`` × cores of CPU time."""
    from galaxy_synth import api

    cores = os.cpu_count() or 1
    budget = minutes * 60 * cores
    settings = settings_for(strategy, seed, results)
    if strategy == "resnet18":  # a plain (empty) study holds the split; the baseline's cost is its full training
        from correlation.ground_truth import GroundTruthStore, stored_or_trained
        from synthesis.study import prepare_study

        opened = prepare_study(settings.replace(objective="val_acc"))
        store = GroundTruthStore(opened.settings.storage_url)
        for s in TRAINING_SEEDS:
            t0 = time.process_time()
            record, _, trained = stored_or_trained(store, opened.study.study_name, 0, resnet18_attrs(opened),
                                                   opened.prepared(), FULL_EPOCHS, s, opened.device,
                                                   opened.settings.study_dir / "ground_truth", opened.settings.precision)
            if trained:
                opened.study.set_user_attr(f"cpu_seconds_seed{s}", time.process_time() - t0)
        return
    used = cpu_used_so_far(settings)  # a resumed search spends only what is left of its budget
    if used >= budget * 0.97 or (strategy == "progressive" and used > 0):  # growth ends by itself
        print(f"{settings.study}: already searched ({used / 60:.1f} CPU-minutes), skipped", flush=True)
        return
    api.synth(settings, stop_when=lambda: used + time.process_time() >= budget)


def cpu_used_so_far(settings) -> float:
    """CPU seconds an earlier run of this search already spent (0 for a new one)."""
    import optuna

    from synthesis.outputs import cpu_timeline

    try:
        study = optuna.load_study(study_name=settings.study, storage=f"sqlite:///{Path(settings.results) / 'study.db'}")
    except KeyError:
        return 0.0
    timeline = cpu_timeline(study)
    return timeline[-1][0] if timeline else 0.0


def pick_at(study, trials: list, proxy) -> object | None:
    """The trial the study's own ranking puts first among ``trials`` (what export would take)."""
    from synthesis.outputs import metrics_table, rank_order

    if not trials:
        return None
    table = metrics_table(study, proxy)
    numbers = {t.number for t in trials}
    table = rank_order(table[table["trial"].isin(numbers) & table["finished"]])
    top = int(table.iloc[0]["trial"])
    return next(t for t in trials if t.number == top)


def evaluate(budgets: list[float], seeds: list[int], results: str, out_dir: Path) -> dict:
    import numpy as np
    from proxies.composite import CompositeProxy

    from correlation.ground_truth import GroundTruthStore, ground_truth_rows, merge_ground_truth_csv, stored_or_trained
    from synthesis.study import reopen_study

    cores = os.cpu_count() or 1
    storage = f"sqlite:///{Path(results) / 'study.db'}"
    rows = []
    opened_any = None
    for strategy in STRATEGIES:
        for seed in seeds:
            name = f"anytime-{strategy}-s{seed}"
            try:
                opened = reopen_study(storage, name, Path(results), progress=False)
            except Exception as exc:  # a search that was not run: say so and go on
                print(f"skip {name}: {exc}")
                continue
            opened_any = opened
            store = GroundTruthStore(storage)
            prep = opened.prepared()
            if strategy == "resnet18":
                attrs = resnet18_attrs(opened)
                cpu = sum(opened.study.user_attrs.get(f"cpu_seconds_seed{s}", 0.0) for s in TRAINING_SEEDS[:1]) / cores
                picks = {b: (0, attrs) if b * 60 >= cpu else None for b in budgets}
            else:
                calibration = opened.attrs.get("calibration")
                proxy = CompositeProxy.from_dict(calibration) if calibration and opened.settings.objective in (
                    "composite", "multi") else None
                from synthesis.outputs import cpu_timeline

                timeline = cpu_timeline(opened.study)
                picks = {}
                for b in budgets:
                    within = [t for cpu, t in timeline if cpu <= b * 60 * cores]
                    ends_by_itself = strategy == "progressive"  # growth stops when it stops improving
                    if timeline and not ends_by_itself and timeline[-1][0] < b * 60 * cores * 0.97:
                        picks[b] = "not run that long"
                        continue
                    t = pick_at(opened.study, within, proxy)
                    picks[b] = (t.number, t.user_attrs) if t is not None else None
            for b, pick in picks.items():
                row = {"strategy": strategy, "search_seed": seed, "budget_minutes": b}
                if pick is None or isinstance(pick, str):
                    rows.append({**row, "note": pick or "nothing finished yet"})
                    continue
                number, attrs = pick
                results_by_seed = []
                for s in TRAINING_SEEDS:
                    record, _, _ = stored_or_trained(store, name, number, attrs, prep, FULL_EPOCHS, s, opened.device,
                                                     opened.settings.study_dir / "ground_truth", opened.settings.precision)
                    results_by_seed.append(record)
                rows.append({**row, "trial": number, "accuracy": float(np.mean([r.accuracy for r in results_by_seed])),
                             "balanced_accuracy": float(np.mean([r.balanced_accuracy for r in results_by_seed])),
                             "architecture": __import__("synthesis.spec", fromlist=["ArchSpec"]).ArchSpec.from_dict(
                                 attrs["arch"]).describe()})
                print(json.dumps(rows[-1]), flush=True)
            gt = ground_truth_rows(opened, store)
            if len(gt):
                merge_ground_truth_csv(gt, ROOT / "bench" / "ground_truth" / f"gz1_dev-{name}.csv")
    # Best known: every 2-seed full training on this data and split, whichever arm measured it.
    store = GroundTruthStore(storage)
    everything = store.table(None, FULL_EPOCHS)
    best = {}
    if len(everything):
        per_arch = everything[everything["seed"].isin(TRAINING_SEEDS)].groupby("arch_key").agg(
            accuracy=("accuracy", "mean"), balanced_accuracy=("balanced_accuracy", "mean"), n=("seed", "nunique"))
        per_arch = per_arch[per_arch["n"] == len(TRAINING_SEEDS)]
        best = {"accuracy": float(per_arch["accuracy"].max()), "balanced_accuracy": float(per_arch["balanced_accuracy"].max()),
                "architectures_known": int(len(per_arch))}
    for r in rows:
        if "accuracy" in r:
            r["regret_accuracy"] = best["accuracy"] - r["accuracy"]
            r["regret_balanced_accuracy"] = best["balanced_accuracy"] - r["balanced_accuracy"]
    n_test = len(opened_any.plan["test"]) if opened_any else 0
    se = float(np.sqrt(best["accuracy"] * (1 - best["accuracy"]) / n_test)) if n_test and best else None
    summary = {"budgets": budgets, "best_known": best, "binomial_se_of_accuracy": se, "test_images": n_test,
               "cores": cores, "rows": rows, "full_epochs": FULL_EPOCHS, "training_seeds": list(TRAINING_SEEDS)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "anytime.json").write_text(json.dumps(summary, indent=2))
    plot(summary, out_dir / "anytime.png")
    return summary


def plot(summary: dict, path: Path) -> None:
    import numpy as np

    from synthesis.outputs import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, metric in zip(axes, ("accuracy", "balanced_accuracy")):
        for i, strategy in enumerate(STRATEGIES):
            pts = [r for r in summary["rows"] if r["strategy"] == strategy and f"regret_{metric}" in r]
            if not pts:
                continue
            budgets = sorted({r["budget_minutes"] for r in pts})
            means = [np.mean([r[f"regret_{metric}"] for r in pts if r["budget_minutes"] == b]) for b in budgets]
            ax.plot(budgets, means, "o-", color=f"C{i}", label=strategy)
            ax.scatter([r["budget_minutes"] for r in pts], [r[f"regret_{metric}"] for r in pts], color=f"C{i}", s=10,
                       alpha=0.5)
        if metric == "accuracy" and summary.get("binomial_se_of_accuracy"):
            ax.axhline(summary["binomial_se_of_accuracy"], color="grey", ls="--", lw=0.8, label="1 binomial SE")
        ax.set_xscale("log")
        ax.set_xticks(summary["budgets"], [f"{b:g}" for b in summary["budgets"]])
        ax.set_xlabel("CPU budget (minutes on 2 cores)")
        ax.set_ylabel(f"regret in test {metric.replace('_', ' ')}")
        ax.set_title(f"best known {summary['best_known'].get(metric, float('nan')):.3f}; mean of search seeds (line)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("gz1_dev, 32 px: the model each strategy would export, fully trained (2 seeds)")
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--minutes", type=float, default=30)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    r.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    r.add_argument("--results", default="results/bench/anytime")
    r.add_argument("--jobs", type=int, default=1, help="searches at once, each with cores // jobs threads")
    one = sub.add_parser("one")
    one.add_argument("strategy")
    one.add_argument("seed", type=int)
    one.add_argument("minutes", type=float)
    one.add_argument("results")
    e = sub.add_parser("evaluate")
    e.add_argument("--budgets", type=float, nargs="+", default=[5, 15, 30, 60])
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    e.add_argument("--results", default="results/bench/anytime")
    e.add_argument("--out", default="results/bench/anytime")
    args = ap.parse_args()
    if args.command == "one":
        run_one(args.strategy, args.seed, args.minutes, args.results)
    elif args.command == "run":
        from concurrent.futures import ThreadPoolExecutor

        # Searches run --jobs at a time, each with cores // jobs intra-op threads: two processes of two
        # threads each on two cores made trials 5-20x slower in CPU time (threads waiting at barriers
        # for a descheduled peer), which would have charged that waste to the strategies' budgets.
        threads = max(1, (os.cpu_count() or 1) // args.jobs)

        def search(job: tuple[int, str]) -> None:
            seed, strategy = job
            t0 = time.time()
            res = subprocess.run([sys.executable, __file__, "one", strategy, str(seed), str(args.minutes), args.results],
                                 env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE",
                                      "OMP_NUM_THREADS": str(threads)})
            print(json.dumps({"strategy": strategy, "seed": seed, "exit": res.returncode, "threads": threads,
                              "wall_minutes": round((time.time() - t0) / 60, 1)}), flush=True)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(search, [(seed, strategy) for seed in args.seeds for strategy in args.strategies]))
    else:
        summary = evaluate(args.budgets, args.seeds, args.results, Path(args.out))
        print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
