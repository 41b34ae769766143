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
from synthesis.settings import STUDY_ATTR
from synthesis.spec import ArchSpec, TrainConfig


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


def metrics_table(study: optuna.Study, proxy: CompositeProxy | None = None) -> pd.DataFrame:
    """One tidy row per trial: number, state, params, spec, every metric, proxy score (rescored).

    ``proxy`` rescored the stored raw metrics with a (possibly newer) calibration; the values the
    sampler saw (``objective``) are left as they were.
    """
    rows = []
    num_classes = len(study.user_attrs.get(STUDY_ATTR, {}).get("class_names", [])) or 2
    for t in study.get_trials(deepcopy=False):
        metrics = trial_metrics(t)
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name,
                               "objective": t.values[0] if t.values else None,
                               "spec_hash": t.user_attrs.get("spec_hash"), "params_count": t.user_attrs.get("params"),
                               "flops": t.user_attrs.get("flops"), "prune_reason": t.user_attrs.get("prune_reason")}
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
    if proxy is not None and len(df):
        scored = df["finished"] & df["arch_json"].notna()
        df["proxy_score"] = np.nan
        if scored.any():  # a collapsed model ranks below every model that learned (proxies.guard)
            raw = proxy.predict(df.loc[scored])
            df.loc[scored, "proxy_score"] = [guarded(v, c) for v, c in zip(raw, df.loc[scored, "collapsed"])]
    return rank_order(df)


def rank_order(df: pd.DataFrame) -> pd.DataFrame:
    """Best first: with promotion, the highest budget reached, then the score there; else the proxy score
    (or, without one, the value the sampler saw). Unfinished trials last."""
    if df.empty:
        return df
    keys = [k for k in ("rung_reached", "rung_score", "proxy_score") if k in df.columns] or ["objective"]
    ordered = df.assign(_finished=df["finished"].astype(int)).sort_values(
        ["_finished", *keys], ascending=False, na_position="last", kind="stable")
    return ordered.drop(columns="_finished").reset_index(drop=True)


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
        spec = ArchSpec.from_dict(t.user_attrs["arch"])
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
    """Objective per completed trial and the best-so-far line (PNG)."""
    trials = completed_trials(study)
    if not trials:
        return None
    plt = pyplot()
    xs = [t.number for t in trials]
    ys = [t.values[0] for t in trials]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(xs, ys, s=18, alpha=0.7, label="trial")
    ax.plot(xs, np.maximum.accumulate(ys), color="C3", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"objective: {study.user_attrs.get(STUDY_ATTR, {}).get('objective', '?')}")
    ax.set_title(f"study {study.study_name}: {len(trials)} completed trials")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def write_study_outputs(study: optuna.Study, folder: Path, proxy: CompositeProxy | None) -> list[Path]:
    """``trials_proxy_metrics.csv`` and ``history.png`` in the study's own folder."""
    written = [write_table(metrics_table(study, proxy), Path(folder) / "trials_proxy_metrics.csv")]
    history = plot_history(study, Path(folder) / "history.png")
    return written + ([history] if history else [])
