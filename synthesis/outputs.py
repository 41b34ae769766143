"""What a study leaves for people to read: the per-trial table, the history plot, the best trials.

Each study writes into its own folder (``RESULTS/studies/<study>/``): no study overwrites another's
files. Every file is written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from proxies.atomic_io import atomic_path
from proxies.composite import CompositeProxy
from proxies.guard import guarded, is_collapsed
from synthesis.errors import DataError, GalaxySynthError
from synthesis.settings import STUDY_ATTR
from synthesis.spec import TrainConfig, model_spec_from_dict


def completed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def trial_metrics(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's metrics, recomputed from its stored history with today's definitions (so trials recorded
    before a metric existed have it too); zero-cost scores as measured."""
    from proxies.metrics import early_training_metrics

    stored = dict(trial.user_attrs.get("metrics", {}))
    history = trial.user_attrs.get("history")
    if history:
        stored.update(early_training_metrics(history, trial.user_attrs.get("params"), trial.user_attrs.get("flops")))
    return stored


def is_trial_collapsed(trial: optuna.trial.FrozenTrial, metrics: dict[str, float], num_classes: int) -> bool:
    if "collapsed" in trial.user_attrs:
        return bool(trial.user_attrs["collapsed"])
    return bool(metrics) and is_collapsed(metrics, num_classes)


from synthesis.choices import RankBy, names  # noqa: E402

RANK_BY = names(RankBy)


def metrics_table(study: optuna.Study, proxy: CompositeProxy | None = None, by: str = "objective") -> pd.DataFrame:
    """One tidy row per trial: number, state, params, spec, every metric, proxy score (rescored), best first.

    ``proxy`` rescored the stored raw metrics with a (possibly newer) calibration; the values the
    sampler saw (``objective``) are left as they were. ``by`` is what ranks the finished trials
    (``rank_score``; with promotion, after the highest budget reached): ``objective`` = what the study
    optimises (the proxy for a composite study, else its validation metric), ``proxy``, ``val_acc``
    or ``balanced_acc``. A collapsed model ranks below every model that learned, whatever ``by``.
    """
    if by not in RANK_BY:
        raise GalaxySynthError(f"rank by {by!r}: choose from {', '.join(RANK_BY)}")
    rows = []
    num_classes = len(study.user_attrs.get(STUDY_ATTR, {}).get("class_names", [])) or 2
    for t in study.get_trials(deepcopy=False):
        metrics = trial_metrics(t)
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name,
                               "objective": t.values[0] if t.values else None,
                               "spec_hash": t.user_attrs.get("spec_hash"), "params_count": t.user_attrs.get("params"),
                               "flops": t.user_attrs.get("flops"), "cpu_images_per_second": t.user_attrs.get("cpu_images_per_second"),
                               "prune_reason": t.user_attrs.get("prune_reason")}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update(metrics)
        row["collapsed"] = is_trial_collapsed(t, metrics, num_classes)
        row["finished"] = t.state == TrialState.COMPLETE or bool(t.user_attrs.get("rung_stopped"))
        rungs = t.user_attrs.get("rungs") or {}
        if rungs:  # promotion: the highest budget it reached, and its score there
            top = max(rungs, key=int)
            row["rung_reached"], row["rung_score"] = int(top), rungs[top]["score"]
        row["arch_json"] = json.dumps(t.user_attrs.get("arch")) if t.user_attrs.get("arch") else None
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    objective = study.user_attrs.get(STUDY_ATTR, {}).get("objective", "composite")
    df["objective_is"] = objective  # what the 'objective' column holds, in words a user can read
    scored = df["finished"] & df["arch_json"].notna() if "arch_json" in df else df["finished"]
    if proxy is not None:
        df["proxy_score"] = np.nan
        if scored.any():  # a collapsed model ranks below every model that learned (proxies.guard)
            raw = proxy.predict(df.loc[scored])
            df.loc[scored, "proxy_score"] = [guarded(v, c) for v, c in zip(raw, df.loc[scored, "collapsed"])]
    if by == "objective":
        by = "proxy" if objective in ("composite", "multi") and proxy is not None else (
            objective if objective in ("balanced_acc", "train_acc") else "val_acc")
    source = {"proxy": "proxy_score", "val_acc": "val_acc", "balanced_acc": "val_balanced_acc", "train_acc": "train_acc"}[by]
    if source not in df:
        raise GalaxySynthError(f"cannot rank by {by}: the study's trials have no {source}")
    df["rank_score"] = [guarded(v, c) if by != "proxy" and pd.notna(v) else v
                        for v, c in zip(df[source], df["collapsed"])]
    df["ranked_by"] = by
    df["on_front"] = df["trial"].isin(cost_front(df)["trial"])
    return rank_order(df)


def cost_front(table: pd.DataFrame, score: str = "rank_score", cost: str = "flops") -> pd.DataFrame:
    """The trials no other beats on both score (higher) and cost (lower): the accuracy-against-inference-cost front.

    Finished, learned (not collapsed) trials with a finite score and a known cost, cheapest first.
    """
    if table.empty or score not in table or cost not in table:
        return table.iloc[0:0]
    ok = table["finished"] & ~table["collapsed"].astype(bool) & pd.to_numeric(table[score], errors="coerce").notna() \
        & pd.to_numeric(table[cost], errors="coerce").gt(0)
    rows = table[ok].sort_values([cost, score], ascending=[True, False], kind="stable")
    best, keep = -np.inf, []
    for index, value in zip(rows.index, rows[score].astype(float)):
        if value > best:
            keep.append(index)
            best = value
    return rows.loc[keep]


def binomial_se(p: float, n: int) -> float:
    """One binomial standard error of an accuracy ``p`` measured on ``n`` images."""
    return float(np.sqrt(max(p * (1 - p), 0.0) / max(n, 1)))


def knee_of(front: pd.DataFrame, n_images: int, score: str = "rank_score", cost: str = "flops") -> pd.Series | None:
    """The cheapest trial of the front within one binomial SE of the front's best score (on ``n_images``)."""
    if front.empty:
        return None
    best = float(front[score].max())
    within = front[front[score].astype(float) >= best - binomial_se(best, n_images)]
    return within.sort_values(cost, kind="stable").iloc[0]


def score_images(attrs: dict[str, Any], ranked_by: str) -> int:
    """How many images the ranking score is an accuracy on: the test split for the proxy (it predicts
    full-training test accuracy), the validation subset for validation metrics, the trial subset for training accuracy."""
    plan = attrs.get("plan", {})
    key = {"proxy": "test", "train_acc": "trial_train"}.get(ranked_by, "trial_val")
    return len(plan.get(key, [])) or 1


def rank_order(df: pd.DataFrame) -> pd.DataFrame:
    """Best first: with promotion, the highest budget reached, then the score there; else the proxy score
    (or, without one, the value the sampler saw). Unfinished trials last."""
    if df.empty:
        return df
    keys = [k for k in ("rung_reached", "rung_score", "rank_score", "proxy_score") if k in df.columns] or ["objective"]
    ordered = df.assign(_finished=df["finished"].astype(int)).sort_values(
        ["_finished", *keys], ascending=False, na_position="last", kind="stable")
    return ordered.drop(columns="_finished").reset_index(drop=True)


def read_table(path: Path, what: str = "table") -> pd.DataFrame:
    """A CSV a user named, or one line saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None


def write_table(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def summary_rows(study: optuna.Study, top: int = 5) -> list[dict[str, Any]]:
    """The best completed trials as plain rows (for the printed summary table and the report)."""
    trials = sorted(completed_trials(study), key=lambda t: -(t.values[0] if t.values else -math.inf))[:top]
    rows = []
    for t in trials:
        spec = model_spec_from_dict(t.user_attrs["arch"])
        cfg = TrainConfig.from_dict(t.user_attrs["train_config"])
        rows.append({
            "trial": t.number,
            "objective": round(t.values[0], 4),
            "val_acc": round(t.user_attrs.get("val_acc", float("nan")), 4),
            "val_bal_acc": round(t.user_attrs.get("val_balanced_acc", float("nan")), 4),
            "params": t.user_attrs["params"],
            "arch": spec.describe(),
            "optimizer": f"{cfg.optimizer} lr={cfg.lr:.1e} bs={cfg.batch_size}",
            "seconds": round(t.user_attrs.get("wall_seconds", float("nan")), 1),
        })
    return rows


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
    """Score against forward MFLOPs of every finished trial, the front, its knee; fully trained models and the
    reference architectures (test accuracy) where known."""
    front = cost_front(table)
    if front.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = table["finished"] & ~table["collapsed"].astype(bool) & pd.to_numeric(table["flops"], errors="coerce").gt(0)
    ax.scatter(table.loc[ok, "flops"] / 1e6, table.loc[ok, "rank_score"], s=14, alpha=0.45, label="trial (its score)")
    ax.step(front["flops"] / 1e6, front["rank_score"], where="post", color="C3", label="front")
    knee = knee_of(front, n_images)
    if knee is not None:
        ax.scatter([knee["flops"] / 1e6], [knee["rank_score"]], s=120, facecolor="none", edgecolor="k", lw=1.5,
                   label=f"knee: trial {int(knee['trial'])} (cheapest within 1 SE of the best)")
    if references is not None and len(references):
        for _, r in references.iterrows():
            ax.scatter([r["mflops"]], [r["accuracy"]], marker="*", s=180, edgecolor="k", label=f"{r['name']} (test accuracy)")
    ax.set_xscale("log")
    ax.set_xlabel("forward MFLOPs per image (log)")
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
    from synthesis.runner import finished

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
    from synthesis.cores import allotted_cores

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
