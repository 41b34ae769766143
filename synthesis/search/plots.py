"""What a study draws for people to look at: history, the cost front, the anytime curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from galaxy_common import pyplot, save_figure
from galaxy_common import write_table
from proxies import CompositeProxy
from synthesis.search.ranking import cost_column, cost_front, knee_of, metrics_table
from synthesis.search.trials import completed_trials
from synthesis import STUDY_ATTR


def plot_history(study: optuna.Study, path: Path) -> Path | None:
    """Objective per completed trial and the best-so-far line (PNG); collapsed models apart, below the axis.

    A collapsed model's value is a penalty (its score shifted by proxies.guard.COLLAPSE_SHIFT), not a
    score: drawn on the axis it would squash every learned trial into a line at the top.
    """
    trials = completed_trials(study)
    if not trials:
        return None
    plt = pyplot()
    learned = [t for t in trials if not t.user_attrs.get("collapsed")]
    collapsed = [t for t in trials if t.user_attrs.get("collapsed")]
    fig, ax = plt.subplots(figsize=(7, 4))
    if learned:
        xs, ys = [t.number for t in learned], [t.values[0] for t in learned]
        ax.scatter(xs, ys, s=18, alpha=0.7, label="trial")
        ax.step(xs, np.maximum.accumulate(ys), where="post", color="C3", label="best so far")
        low = min(ys)
        ax.set_ylim(low - 0.08 * (max(ys) - low + 1e-3), None)
    if collapsed:
        ax.scatter([t.number for t in collapsed], [0.02] * len(collapsed), transform=ax.get_xaxis_transform(), marker="v",
                   color="grey", s=22, clip_on=False, label=f"collapsed to one class ({len(collapsed)}): penalised, off the axis")
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"objective: {study.user_attrs.get(STUDY_ATTR, {}).get('objective', '?')}")
    ax.set_title(f"study {study.study_name}: {len(trials)} completed trials")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_front(table: pd.DataFrame, path: Path, n_images: int, references: pd.DataFrame | None = None) -> Path | None:
    """Score against the study's cost (forward MFLOPs, or predicted ms per image) of every finished trial, the front,
    its knee; fully trained models and the reference architectures (test accuracy, placed by MFLOPs) where known."""
    front = cost_front(table)
    if front.empty:
        return None
    cost = cost_column(table)
    scale, label = (1e6, "forward MFLOPs per image (log)") if cost == "flops" else \
        (1.0, "predicted ms per image, one CPU thread, batch 256 (log)")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = table["finished"] & ~table["collapsed"].astype(bool) & pd.to_numeric(table[cost], errors="coerce").gt(0)
    ax.scatter(table.loc[ok, cost] / scale, table.loc[ok, "rank_score"], s=14, alpha=0.45, label="trial (its score)")
    ax.step(front[cost] / scale, front["rank_score"], where="post", color="C3", label="front")
    knee = knee_of(front, n_images)
    if knee is not None:
        ax.scatter([knee[cost] / scale], [knee["rank_score"]], s=120, facecolor="none", edgecolor="k", lw=1.5,
                   label=f"knee: trial {int(knee['trial'])} (cheapest within 1 SE of the best)")
    if references is not None and len(references) and cost == "flops":
        for _, r in references.iterrows():
            ax.scatter([r["mflops"]], [r["accuracy"]], marker="*", s=180, edgecolor="k", label=f"{r['name']} (test accuracy)")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(f"score: {table['ranked_by'].iloc[0]}")
    ax.set_title("accuracy against inference cost", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def write_study_outputs(study: optuna.Study, folder: Path, proxy: CompositeProxy | None) -> list[Path]:
    """``trials_proxy_metrics.csv`` and ``history.png`` in the study's own folder."""
    written = [write_table(metrics_table(study, proxy), Path(folder) / "trials_proxy_metrics.csv")]
    history = plot_history(study, Path(folder) / "history.png")
    return written + ([history] if history else [])


def cpu_timeline(study: optuna.Study) -> list[tuple[float, optuna.trial.FrozenTrial]]:
    """(CPU seconds the search process had used when the trial finished, trial), finished trials in order.

    A resumed search restarts its process's counter; each restart continues from where the last
    process stopped. (With several workers the sum of their CPU would be the cost; this follows
    each process in turn.)
    """
    from synthesis.search.trials import finished

    done = sorted((t for t in study.get_trials(deepcopy=False) if "process_cpu_seconds" in t.user_attrs),
                  key=lambda t: t.datetime_complete or t.datetime_start)
    out, offset, last_pid, last_value = [], 0.0, None, 0.0
    for t in done:
        pid = t.user_attrs.get("worker")
        if last_pid is not None and pid != last_pid:
            offset += last_value
        last_pid, last_value = pid, t.user_attrs["process_cpu_seconds"]
        if finished(t):
            out.append((offset + last_value, t))
    return out


def plot_anytime(study: optuna.Study, path: Path, full_training: dict[int, float] | None = None,
                 cores: int | None = None) -> Path | None:
    """Best value so far against the CPU time the search used (minutes on all cores), with the
    full-training accuracy of the trial that was best at each point where it is known."""
    from synthesis.hardware import allotted_cores

    timeline = cpu_timeline(study)
    values = [(cpu, t) for cpu, t in timeline if t.values]
    if not values:
        return None
    cores = cores or allotted_cores().cores
    plt = pyplot()
    minutes = np.array([cpu / 60 / cores for cpu, _ in values])
    best, best_trial, leaders = -np.inf, None, []
    for _, t in values:
        if t.values[0] > best:
            best, best_trial = t.values[0], t
        leaders.append((best, best_trial))
    fig, ax = plt.subplots(figsize=(7, 4))
    learned = [(m, t.values[0]) for m, (_, t) in zip(minutes, values) if not t.user_attrs.get("collapsed")]
    if learned:
        ax.scatter(*zip(*learned), s=12, alpha=0.5, label="trial (collapsed models left out)")
    ax.step(minutes, [b for b, _ in leaders], where="post", color="C3", label="best so far (the search's value)")
    if full_training:
        known = [(m, full_training[t.number]) for m, (_, t) in zip(minutes, leaders) if t.number in full_training]
        if known:
            ax.plot(*zip(*known), "s", color="C2", label="that trial, fully trained: test accuracy")
    if learned:  # a penalised (collapsed) best-so-far stays below the axis instead of squashing it
        low, high = min(v for _, v in learned), max(v for _, v in learned)
        ax.set_ylim(low - 0.08 * (high - low + 1e-3), None)
    ax.set_xlabel(f"CPU time of the search (minutes on {cores} cores)")
    ax.set_ylabel(f"objective: {study.user_attrs.get(STUDY_ATTR, {}).get('objective', '?')}")
    ax.set_title("what the study would export, as it goes")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
