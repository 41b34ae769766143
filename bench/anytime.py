"""Anytime regret: the model each strategy would export after 5 and 15 minutes on 2 cores, fully trained.

Strategies (each a study on the same data and split, each search a process of its own with one
thread, until its CPU budget is spent; at least 4 search seeds each):

* ``tpe-default``   TPE with the default objective (the calibrated composite where in its domain)
* ``random``        random search, picking by 2-epoch validation accuracy
* ``tpe-promotion`` TPE, default objective, promotion by successive halving (--fidelities 2,6,18)
* ``progressive``   progressive growth (children inherit their parent's weights; it ends by itself)
* ``progressive-narrow`` the same from a one-block network of width 8 (``--growth-widths 8,16,32``): the cheap end
* ``tpe-calibrating`` TPE with promotion (2,6,18) whose scorer the study refits on its own promoted trials
  (``--strategy calibrating``, issue #36)

and the reference architectures (torchvision's ResNet-18, MobileNetV3-small, EfficientNet-B0 with
the small-image stem), no search: their own full training is their cost.

CPU time is what the search process used (user + system, ``time.process_time``), divided by the
machine's cores: "15 minutes on 2 cores" is 30 CPU-minutes, and the figure does not change when
something else shares the machine. One 15-minute search gives the 5-minute pick too. At each budget
the pick is the top of the study's own ranking among the trials finished by then (what
``galaxy-synth export`` would take); it is fully trained with 2 seeds (15 epochs, cosine, all
training images: the ground truth of ``correlate``), reusing every full training of the same
architecture through the ground-truth store. Regret = best 2-seed mean test accuracy (or balanced
accuracy) measured on this data and split by any arm, minus the pick's; differences between two
strategies are paired by search seed, with a bootstrap interval over the seeds; and, on the same test
galaxies, by galaxy (``paired_by_galaxy``: each pick's models reloaded from their weights, per galaxy
the difference of the two arms' correctness averaged over the search seeds, galaxies resampled),
which separates picks that each one's binomial SE cannot. Every full training goes into
bench/ground_truth/.

    .venv/bin/python bench/anytime.py run --data gz1 rings --minutes 15 --seeds 0 1 2 3 --jobs 2 --results ../runs/anytime
    .venv/bin/python bench/anytime.py evaluate --data gz1 --budgets 5 15 --seeds 0 1 2 3 --results ../runs/anytime

    .venv/bin/python bench/anytime.py combine A.json B.json --out AB.json   # seeds evaluated on different machines

``--tag T`` (run and evaluate) names the studies ``anytime-<data>-<strategy>-T-s<seed>``: a rerun of a strategy after a
code change keeps its own studies and ground-truth tables beside the earlier ones.
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
SHARED = ROOT.parent / "shared" / "data"

STRATEGIES = {
    "tpe-default": {},
    "random": {"sampler": "random", "objective": "val_acc"},
    "tpe-promotion": {"fidelities": "2,6,18"},
    "progressive": {"strategy": "progressive"},
    "progressive-narrow": {"strategy": "progressive", "growth_widths": "8,16,32"},
    "tpe-calibrating": {"strategy": "calibrating", "fidelities": "2,6,18"},
}
DATA = {
    "gz1": {"data": str(SHARED / "gz1_dev"), "merge": ["spiral_cw,spiral_acw=spiral"], "drop": ["dont_know"]},
    "rings": {"data": str(SHARED / "gzdecals_rings")},
    "gz2": {"data": str(SHARED / "gz2_spiral_dev")},  # Galaxy Zoo 2 spiral / non-spiral: ~800 test galaxies
    "hsc": {"data": str(SHARED / "hsc_gc1_interacting")},  # HSC interacting galaxies, 4 classes, z as an extra input
}
DATA_FOLDERS = {Path(v["data"]).name: k for k, v in DATA.items()}  # --data also takes a folder's name, e.g. gz2_spiral_dev
REFERENCES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")
FULL_EPOCHS = 15
TRAINING_SEEDS = (0, 1)
MACHINE_CORES = os.cpu_count() or 1  # the budget's unit: minutes on this machine's cores (not the search's one thread)


def data_key(name: str) -> str:
    """A --data value: a key of DATA, or the name of its folder in ../shared/data (gz2_spiral_dev → gz2)."""
    return DATA_FOLDERS.get(name, name)


def study_name(dataset: str, strategy: str, seed: int, tag: str = "") -> str:
    return f"anytime-{dataset}-{strategy}{'-' + tag if tag else ''}-s{seed}"


def grows(strategy: str) -> bool:
    """Progressive growth ends by itself: no CPU budget to stop it, its 5- and 15-minute picks are one."""
    return STRATEGIES.get(strategy, {}).get("strategy") == "progressive"


def settings_for(dataset: str, strategy: str, seed: int, results: str, tag: str = ""):
    from synthesis.settings import StudySettings

    return StudySettings(**DATA[dataset], **STRATEGIES[strategy], study=study_name(dataset, strategy, seed, tag),
                         search_seed=seed, results=results, trials=100_000, progress=False, workers=1)


def run_one(dataset: str, strategy: str, seed: int, minutes: float, results: str, tag: str = "") -> None:
    """One search in this process until it has used ``minutes`` × the machine's cores of CPU time."""
    from galaxy_synth import api

    budget = minutes * 60 * MACHINE_CORES
    settings = settings_for(dataset, strategy, seed, results, tag)
    used = cpu_used_so_far(settings)  # a resumed search spends only what is left of its budget
    if used >= budget * 0.97 or (grows(strategy) and used > 0):
        print(f"{settings.study}: already searched ({used / 60:.1f} CPU-minutes), skipped", flush=True)
        return
    stop = (lambda: used + time.process_time() >= budget) if not grows(strategy) else None
    api.synth(settings, stop_when=stop)


def cpu_used_so_far(settings) -> float:
    """CPU seconds an earlier run of this search already spent (0 for a new one)."""
    import optuna

    from synthesis.search.plots import cpu_timeline
    from synthesis.search.storage import open_storage

    try:
        study = optuna.load_study(study_name=settings.study, storage=open_storage(settings.storage_url))
    except KeyError:
        return 0.0
    timeline = cpu_timeline(study)
    return timeline[-1][0] if timeline else 0.0


def pick_at(study, trials: list, proxy):
    """The trial the study's own ranking puts first among ``trials`` (what export would take)."""
    from synthesis.search.ranking import metrics_table, rank_order

    if not trials:
        return None
    table = metrics_table(study, proxy)
    numbers = {t.number for t in trials}
    table = rank_order(table[table["trial"].isin(numbers) & table["finished"]])
    return next(t for t in trials if t.number == int(table.iloc[0]["trial"])) if len(table) else None


def search_facts(study) -> dict:
    """What a search spent its samples on: trials, share lost to the caps, shrunk to fit, promoted per rung."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    lost = [t for t in trials if "--max-" in str(t.user_attrs.get("prune_reason", ""))]
    shrunk = [t for t in trials if "fitted_to_caps" in t.user_attrs]
    rungs: dict[str, int] = {}
    for t in trials:
        for budget in (t.user_attrs.get("rungs") or {}):
            rungs[budget] = rungs.get(budget, 0) + 1
    return {"sampled": len(trials), "lost_to_caps": len(lost), "lost_share": len(lost) / max(1, len(trials)),
            "shrunk_to_fit": len(shrunk), "reached_rung": dict(sorted(rungs.items(), key=lambda kv: int(kv[0])))}


def full_result(store, name: str, number: int, attrs: dict, opened, prep, per_galaxy: bool = True) -> dict:
    """The 2-seed mean of a model's full training (trained now where not stored), and its cost; with ``per_galaxy``
    also each test galaxy's correctness (the models reloaded from their weights, retrained where those are gone)."""
    from dataclasses import replace

    import numpy as np

    from synthesis.full_training import FullTrainingSettings, stored_or_trained
    from synthesis.models.builder import spec_cost
    from synthesis.models.spec import model_spec_from_dict

    training = replace(FullTrainingSettings.of(opened.settings, FULL_EPOCHS), study_name=name, seeds=TRAINING_SEEDS,
                       progress=False)
    trained = [stored_or_trained(store, training, job, attrs, prep, need_model=per_galaxy)
               for job in training.jobs([number])]
    records = [record for record, _, _ in trained]
    spec = model_spec_from_dict(attrs["arch"])
    params, flops = spec_cost(spec)
    row = {"trial": number, "architecture": spec.describe(), "params": params, "mflops": flops / 1e6,
           "accuracy": float(np.mean([r.accuracy for r in records])),
           "balanced_accuracy": float(np.mean([r.balanced_accuracy for r in records])),
           "full_train_cpu_seconds_seed0": records[0].wall_seconds}
    if per_galaxy:
        row["test_correct"] = test_correct([model for _, model, _ in trained], opened, prep)
    return row


def test_correct(models: list, opened, prep) -> list[float]:
    """Per test galaxy (the split's order), the share of the training seeds' models that classify it right: what
    two picks are paired on."""
    import numpy as np
    import torch

    from synthesis.training.loop import evaluate as evaluate_split

    test = prep.split("test", torch.device("cpu"))
    labels = test.y.numpy()
    right = [evaluate_split(m.cpu(), test, prep.normalizer, len(opened.data.class_names),
                            keep_probabilities=True).probabilities.argmax(1) == labels for m in models]
    return np.mean(right, axis=0).round(3).tolist()


def reference_attrs(opened, reference: str) -> dict:
    from synthesis.models.spec import ReferenceSpec, TrainConfig

    spec = ReferenceSpec(reference, num_classes=len(opened.data.class_names), image_size=opened.data.size,
                         n_extra=len(opened.data.extra_names))
    cfg = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=64, loss=opened.settings.loss)
    return {"arch": spec.to_dict(), "train_config": cfg.to_dict()}


def evaluate_references(dataset: str, budgets: list[float], results: str, store) -> tuple[list[dict], list[dict]]:
    """Full-train the reference architectures on the searches' split; their training time is their cost."""
    import json as _json

    from synthesis.search.study import prepare_study

    opened = prepare_study(settings_for(dataset, "tpe-default", 0, results).replace(
        study=f"anytime-{dataset}-references", objective="val_acc"))
    prep = opened.prepared()
    rows, csv_rows = [], []
    for k, reference in enumerate(REFERENCES, start=1):
        attrs = reference_attrs(opened, reference)
        t0 = time.process_time()
        result = full_result(store, opened.study.study_name, -k, attrs, opened, prep)
        result.pop("test_correct", None)  # kept only for the searches' picks (the galaxy-paired comparisons)
        spent = time.process_time() - t0
        key = f"cpu_seconds_{reference}"
        if spent > 5 and key not in opened.study.user_attrs:  # trained now: its CPU time is its cost
            opened.study.set_user_attr(key, spent / len(TRAINING_SEEDS))
        cost = opened.study.user_attrs.get(key, result["full_train_cpu_seconds_seed0"])
        for b in budgets:
            if b * 60 * MACHINE_CORES >= cost:
                rows.append({"strategy": reference, "search_seed": None, "budget_minutes": b, **result,
                             "cost_cpu_minutes": cost / 60})
        for r in store.table(opened.study.study_name, FULL_EPOCHS).itertuples():
            if r.trial_number == -k:
                csv_rows.append({"dataset": dataset, "study": opened.study.study_name, "trial": -k, "reference": reference,
                                 "arch_json": _json.dumps(attrs["arch"], sort_keys=True), "full_epochs": FULL_EPOCHS,
                                 "gt_seed": r.seed, "accuracy": r.accuracy, "balanced_accuracy": r.balanced_accuracy,
                                 "macro_f1": r.macro_f1, "test_loss": r.test_loss, "full_train_seconds": r.wall_seconds,
                                 "params": result["params"], "mflops": result["mflops"], "gt_precision": opened.settings.precision,
                                 "measured": str(r.created)[:19]})
    return rows, csv_rows


def evaluate_strategy(dataset: str, strategy: str, seed: int, budgets: list[float], results: str, store,
                      tag: str = "") -> tuple[list[dict], dict]:
    from synthesis.full_training import ground_truth_rows, merge_ground_truth_csv
    from proxies.composite import CompositeProxy
    from synthesis.search.plots import cpu_timeline
    from synthesis.search.study import reopen_study

    name = study_name(dataset, strategy, seed, tag)
    opened = reopen_study(f"sqlite:///{Path(results) / 'study.db'}", name, Path(results), progress=False)
    prep = opened.prepared()
    calibration = opened.attrs.get("calibration")
    proxy = CompositeProxy.from_dict(calibration) if calibration and opened.settings.objective in ("composite", "multi") else None
    timeline = cpu_timeline(opened.study)
    facts = {**search_facts(opened.study), "cpu_minutes_on_cores": timeline[-1][0] / 60 / MACHINE_CORES if timeline else 0}
    rows = []
    for b in budgets:
        row = {"strategy": strategy, "search_seed": seed, "budget_minutes": b}
        within = [t for cpu, t in timeline if cpu <= b * 60 * MACHINE_CORES]
        row["trials_finished"] = len(within)
        if not grows(strategy) and (not timeline or timeline[-1][0] < b * 60 * MACHINE_CORES * 0.97):
            rows.append({**row, "note": "not run that long"})
            continue
        t = pick_at(opened.study, within, proxy)
        if t is None:
            rows.append({**row, "note": "nothing finished yet"})
            continue
        rows.append({**row, **full_result(store, name, t.number, t.user_attrs, opened, prep)})
        print(json.dumps(rows[-1]), flush=True)
    gt = ground_truth_rows(opened, store)
    if len(gt):
        merge_ground_truth_csv(gt, ROOT / "bench" / "ground_truth" / f"{Path(DATA[dataset]['data']).name}-{name}.csv")
    return rows, facts


def paired(rows: list[dict], a: str, b: str, metric: str, budget: float, seeds: list[int]) -> dict | None:
    """Mean over search seeds of regret(b) - regret(a) (positive: a is better), with a bootstrap 95% interval."""
    import numpy as np

    def regret(strategy: str, seed: int):
        return next((r[f"regret_{metric}"] for r in rows if r["strategy"] == strategy and r["search_seed"] == seed
                     and r["budget_minutes"] == budget and f"regret_{metric}" in r), None)

    diffs = [regret(b, s) - regret(a, s) for s in seeds if regret(a, s) is not None and regret(b, s) is not None]
    if len(diffs) < 2:
        return None
    rng = np.random.default_rng(0)
    boot = rng.choice(np.asarray(diffs), size=(10_000, len(diffs))).mean(axis=1)
    return {"a": a, "b": b, "metric": metric, "budget_minutes": budget, "n_seeds": len(diffs),
            "mean_b_minus_a": float(np.mean(diffs)), "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "per_seed": diffs}


def evaluate(dataset: str, budgets: list[float], seeds: list[int], results: str, out_dir: Path,
             strategies: list[str] | None = None, references: bool = True, tag: str = "") -> dict:
    """Full trainings (reused where stored), regret, plots. ``strategies``/``references`` restrict what is trained
    (two evaluate processes can share the work: the store is one; a last full run then only reads)."""
    import numpy as np
    import pandas as pd

    from synthesis.full_training import open_ground_truth

    storage = f"sqlite:///{Path(results) / 'study.db'}"
    store = open_ground_truth(storage)
    rows, facts = [], {}
    for strategy in strategies or STRATEGIES:
        for seed in seeds:
            try:
                got, facts[study_name(dataset, strategy, seed, tag)] = evaluate_strategy(dataset, strategy, seed, budgets,
                                                                                        results, store, tag)
            except Exception as exc:  # a search that was not run: say so and go on
                print(f"skip {study_name(dataset, strategy, seed, tag)}: {exc}")
                continue
            rows += got
    ref_rows, ref_csv = evaluate_references(dataset, budgets, results, store) if references else ([], [])
    rows += ref_rows
    if ref_csv:
        pd.DataFrame(ref_csv).to_csv(ROOT / "bench" / "ground_truth" / f"{Path(DATA[dataset]['data']).name}-references.csv",
                                     index=False)
    everything = store.table(None, FULL_EPOCHS)  # one storage may hold several data sets' studies: this one's only
    everything = everything[everything["study_name"].str.startswith(f"anytime-{dataset}-")]
    per_arch = everything[everything["seed"].isin(TRAINING_SEEDS)].groupby("arch_key").agg(
        accuracy=("accuracy", "mean"), balanced_accuracy=("balanced_accuracy", "mean"), n=("seed", "nunique"))
    per_arch = per_arch[per_arch["n"] == len(TRAINING_SEEDS)]
    best = {"accuracy": float(per_arch["accuracy"].max()), "balanced_accuracy": float(per_arch["balanced_accuracy"].max()),
            "architectures_known": int(len(per_arch))}
    for r in rows:
        for m in ("accuracy", "balanced_accuracy"):
            if m in r:
                r[f"regret_{m}"] = best[m] - r[m]
    n_test = int(everything["confusion_json"].map(lambda c: int(np.asarray(json.loads(c)).sum())).iloc[0])
    se = float(np.sqrt(best["accuracy"] * (1 - best["accuracy"]) / n_test))
    comparisons = paired_comparisons(rows, budgets, seeds)
    summary = {"dataset": dataset, "budgets": budgets, "seeds": seeds, "best_known": best, "binomial_se_of_accuracy": se,
               "test_images": n_test, "machine_cores": MACHINE_CORES, "full_epochs": FULL_EPOCHS,
               "training_seeds": list(TRAINING_SEEDS), "rows": rows, "paired": comparisons,
               "paired_by_galaxy": galaxy_paired_comparisons(rows, budgets, seeds), "searches": facts,
               "cheaper_than_references": cheaper_than_references(rows)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"anytime_{dataset}.json").write_text(json.dumps(summary, indent=2))
    plot(summary, out_dir / f"anytime_{dataset}.png")
    plot_front(summary, out_dir / f"front_{dataset}.png")
    return summary


PAIRS = (("tpe-default", "random"), ("tpe-promotion", "random"), ("tpe-default", "tpe-promotion"),
         ("tpe-calibrating", "random"), ("tpe-calibrating", "tpe-default"), ("tpe-calibrating", "tpe-promotion"),
         ("progressive-narrow", "random"), ("tpe-calibrating", "progressive-narrow"))


def paired_comparisons(rows: list[dict], budgets: list[float], seeds: list[int]) -> list[dict]:
    return [c for b in budgets for m in ("accuracy", "balanced_accuracy") for a, other in PAIRS
            if (c := paired(rows, a, other, m, b, seeds)) is not None]


def galaxy_paired(rows: list[dict], a: str, b: str, budget: float, seeds: list[int]) -> dict | None:
    """Test accuracy of a's picks minus b's on the same test galaxies: per galaxy, the difference of the two picks'
    correctness (each the mean over its training seeds) averaged over the search seeds where both arms have a pick;
    a 95% bootstrap interval that resamples galaxies. It separates two picks where each one's binomial SE cannot;
    the search seeds' own spread is the seed-paired interval's business (:func:`paired`)."""
    import numpy as np

    def pick(strategy: str, seed: int):
        return next((r["test_correct"] for r in rows if r["strategy"] == strategy and r["search_seed"] == seed
                     and r["budget_minutes"] == budget and "test_correct" in r), None)

    pairs = [(pick(a, s), pick(b, s)) for s in seeds]
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in pairs if x is not None and y is not None]
    if not pairs:
        return None
    diff = np.mean([x - y for x, y in pairs], axis=0)
    boot = diff[np.random.default_rng(0).integers(0, len(diff), size=(10_000, len(diff)))].mean(axis=1)
    return {"a": a, "b": b, "budget_minutes": budget, "n_seeds": len(pairs), "test_galaxies": len(diff),
            "mean_a_minus_b": float(diff.mean()),
            "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]}


def galaxy_paired_comparisons(rows: list[dict], budgets: list[float], seeds: list[int]) -> list[dict]:
    return [c for b in budgets for a, other in PAIRS if (c := galaxy_paired(rows, a, other, b, seeds)) is not None]


def combine(paths: list[Path], out: Path) -> dict:
    """One summary from the summaries of several evaluate runs on one data set (search seeds run on different
    machines, whose results folders did not survive): regret against the best known of them all, paired again."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    if len({s["dataset"] for s in parts}) != 1:
        raise SystemExit("combine: the summaries are of different data sets")
    rows = [r for s in parts for r in s["rows"]]
    best = {m: max(s["best_known"][m] for s in parts) for m in ("accuracy", "balanced_accuracy")}
    for r in rows:
        for m in best:
            if m in r:
                r[f"regret_{m}"] = best[m] - r[m]
    budgets = sorted({b for s in parts for b in s["budgets"]})
    seeds = sorted({r["search_seed"] for r in rows if r.get("search_seed") is not None})  # references have none
    se = (best["accuracy"] * (1 - best["accuracy"]) / parts[0]["test_images"]) ** 0.5
    summary = {**parts[0], "best_known": best, "binomial_se_of_accuracy": se, "seeds": seeds, "budgets": budgets, "rows": rows,
               "paired": paired_comparisons(rows, budgets, seeds),
               "paired_by_galaxy": galaxy_paired_comparisons(rows, budgets, seeds), "combined_from": [str(p) for p in paths],
               "searches": {k: v for s in parts for k, v in s.get("searches", {}).items()},
               "cheaper_than_references": cheaper_than_references(rows)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    plot(summary, out.with_suffix(".png"))
    plot_front(summary, out.with_name(f"{out.stem}_front.png"))
    return summary


def galaxy_table(summary: dict) -> str:
    """The galaxy-paired comparisons as a markdown table (BENCHMARKS)."""
    lines = ["| budget | a − b | seeds | test galaxies | accuracy difference [95%, galaxies resampled] |", "|---|---|---|---|---|"]
    for c in summary.get("paired_by_galaxy", []):
        lines.append(f"| {c['budget_minutes']:g} min | {c['a']} − {c['b']} | {c['n_seeds']} | {c['test_galaxies']} | "
                     f"{c['mean_a_minus_b']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] |")
    return "\n".join(lines)


def cheaper_than_references(rows: list[dict]) -> list[dict]:
    """For each reference: the cheapest fully trained search pick at least as accurate, and its FLOP ratio."""
    picks = [r for r in rows if r["strategy"] in STRATEGIES and "accuracy" in r]
    out = []
    for ref in {r["strategy"]: r for r in rows if r["strategy"] in REFERENCES}.values():
        better = [p for p in picks if p["accuracy"] >= ref["accuracy"]]
        cheapest = min(better, key=lambda p: p["mflops"]) if better else None
        out.append({"reference": ref["strategy"], "accuracy": ref["accuracy"], "mflops": ref["mflops"],
                    "cheapest_as_accurate": cheapest and {k: cheapest[k] for k in ("strategy", "search_seed", "trial",
                                                                                    "architecture", "accuracy", "mflops")},
                    "flops_ratio": cheapest["mflops"] / ref["mflops"] if cheapest else None})
    return out


COLOURS = {"tpe-default": "C0", "random": "C1", "tpe-promotion": "C2", "progressive": "C4", "progressive-narrow": "C9",
           "tpe-calibrating": "C8", "resnet18": "C3", "mobilenet_v3_small": "C5", "efficientnet_b0": "C6"}


def plot(summary: dict, path: Path) -> None:
    import numpy as np

    from galaxy_common.figures import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, metric in zip(axes, ("accuracy", "balanced_accuracy")):
        for strategy in [*STRATEGIES, *REFERENCES]:
            pts = [r for r in summary["rows"] if r["strategy"] == strategy and f"regret_{metric}" in r]
            if not pts:
                continue
            budgets = sorted({r["budget_minutes"] for r in pts})
            means = [np.mean([r[f"regret_{metric}"] for r in pts if r["budget_minutes"] == b]) for b in budgets]
            style = "o-" if strategy in STRATEGIES else "*--"
            ax.plot(budgets, means, style, color=COLOURS[strategy], label=strategy)
            ax.scatter([r["budget_minutes"] for r in pts], [r[f"regret_{metric}"] for r in pts], color=COLOURS[strategy],
                       s=10, alpha=0.5)
        if metric == "accuracy":
            ax.axhline(summary["binomial_se_of_accuracy"], color="grey", ls="--", lw=0.8, label="1 binomial SE")
        ax.set_xticks(summary["budgets"], [f"{b:g}" for b in summary["budgets"]])
        ax.set_xlabel(f"CPU budget (minutes on {summary['machine_cores']} cores)")
        ax.set_ylabel(f"regret in test {metric.replace('_', ' ')}")
        ax.set_title(f"best known {summary['best_known'][metric]:.3f}; line: mean of {len(summary['seeds'])} search seeds",
                     fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{summary['dataset']}: the model each strategy would export, fully trained ({len(TRAINING_SEEDS)} seeds)")
    save_figure(fig, path)


def plot_front(summary: dict, path: Path) -> None:
    """Test accuracy against forward MFLOPs: every fully trained pick, the references, and the front they make."""
    from galaxy_common.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = {(r["strategy"], r.get("trial")): r for r in summary["rows"] if "accuracy" in r}
    for strategy in [*STRATEGIES, *REFERENCES]:
        mine = [r for (s, _), r in pts.items() if s == strategy]
        if mine:
            ax.scatter([r["mflops"] for r in mine], [r["accuracy"] for r in mine], color=COLOURS[strategy],
                       marker="o" if strategy in STRATEGIES else "*", s=30 if strategy in STRATEGIES else 160,
                       label=strategy, alpha=0.8, edgecolor="k" if strategy in REFERENCES else None)
    front, best = [], -1.0
    for r in sorted(pts.values(), key=lambda r: r["mflops"]):
        if r["accuracy"] > best:
            front.append(r)
            best = r["accuracy"]
    ax.step([r["mflops"] for r in front], [r["accuracy"] for r in front], where="post", color="k", lw=0.8, label="front")
    ax.set_xscale("log")
    ax.set_xlabel("forward MFLOPs per image (log)")
    ax.set_ylabel(f"test accuracy (mean of {len(TRAINING_SEEDS)} seeds)")
    ax.set_title(f"{summary['dataset']}: accuracy against inference cost", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the searches, --jobs at a time, one thread each (resumable)")
    r.add_argument("--data", nargs="+", default=["gz1"], choices=list(DATA), type=data_key)
    r.add_argument("--minutes", type=float, default=15)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    r.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    r.add_argument("--results", default="../runs/anytime")
    r.add_argument("--jobs", type=int, default=2, help="searches at once, one thread each")
    r.add_argument("--tag", default="", help="suffix for the study names (a rerun beside earlier studies)")
    one = sub.add_parser("one")
    one.add_argument("dataset")
    one.add_argument("strategy")
    one.add_argument("seed", type=int)
    one.add_argument("minutes", type=float)
    one.add_argument("results")
    one.add_argument("--tag", default="")
    e = sub.add_parser("evaluate", help="full trainings of the picks and references, regret, plots")
    e.add_argument("--data", default="gz1", choices=list(DATA), type=data_key)
    e.add_argument("--budgets", type=float, nargs="+", default=[5, 15])
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    e.add_argument("--results", default="../runs/anytime")
    e.add_argument("--out", default="docs")
    e.add_argument("--strategies", nargs="+", default=None, help="only these searches (default: all)")
    e.add_argument("--no-references", action="store_true", help="leave the reference architectures out")
    e.add_argument("--tag", default="", help="the studies of `run --tag`")
    c = sub.add_parser("combine", help="one summary (regret, paired intervals, plot) from several evaluate summaries")
    c.add_argument("summaries", nargs="+", type=Path)
    c.add_argument("--out", type=Path, required=True, help="the combined JSON (its plot beside it, .png)")
    args = ap.parse_args()
    if args.command == "combine":
        summary = combine(args.summaries, args.out)
        print(json.dumps(summary["paired"], indent=2))
    elif args.command == "one":
        run_one(args.dataset, args.strategy, args.seed, args.minutes, args.results, args.tag)
    elif args.command == "run":
        from concurrent.futures import ThreadPoolExecutor

        def search(job: tuple[str, int, str]) -> None:
            dataset, seed, strategy = job
            t0 = time.time()
            # One thread each: two 2-thread processes on 2 cores spent 5-20x the CPU per trial at barriers.
            res = subprocess.run([sys.executable, __file__, "one", dataset, strategy, str(seed), str(args.minutes),
                                  args.results, "--tag", args.tag], env={**os.environ, "OMP_NUM_THREADS": "1"})
            print(json.dumps({"dataset": dataset, "strategy": strategy, "seed": seed, "exit": res.returncode,
                              "wall_minutes": round((time.time() - t0) / 60, 1)}), flush=True)

        jobs = [(d, seed, strategy) for d in args.data for seed in args.seeds for strategy in args.strategies]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(search, jobs))
    else:
        summary = evaluate(args.data, args.budgets, args.seeds, args.results, Path(args.out), args.strategies,
                           not args.no_references, args.tag)
        print(json.dumps({k: v for k, v in summary.items() if k not in ("rows", "searches")}, indent=2))
        print(galaxy_table(summary))


if __name__ == "__main__":
    main()
