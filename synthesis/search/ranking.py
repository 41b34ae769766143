"""Ranking a study's trials: one row per trial with every metric, the order export takes, the accuracy-against-cost front and its knee.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import optuna
import pandas as pd

from proxies import CompositeProxy
from proxies import guarded, is_collapsed
from synthesis import Cost, Objective, RankBy, StudySettings, names, objective_info
from synthesis import GalaxySynthError
from synthesis.models import TrainConfig, model_spec_from_dict
from synthesis.search.trials import completed_trials, finished
from synthesis import STUDY_ATTR


def trial_metrics(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's metrics, recomputed from its stored history with today's definitions (so trials recorded
    before a metric existed have it too); zero-cost scores as measured."""
    from proxies import early_training_metrics

    stored = dict(trial.user_attrs.get("metrics", {}))
    history = trial.user_attrs.get("history")
    if history:
        stored.update(early_training_metrics(history, trial.user_attrs.get("params"), trial.user_attrs.get("flops")))
    return stored


def is_trial_collapsed(trial: optuna.trial.FrozenTrial, metrics: dict[str, float], num_classes: int) -> bool:
    if "collapsed" in trial.user_attrs:
        return bool(trial.user_attrs["collapsed"])
    return bool(metrics) and is_collapsed(metrics, num_classes)


RANK_BY = names(RankBy)


# The trial column each --cost ranks the front by: with time, the catalogue-batch figure (predict's use) on one thread.
COST_COLUMNS = {Cost.TIME: "predicted_ms_per_image_at_batch", Cost.FLOPS: "flops"}
PREDICTED_TIMES = ("predicted_ms_per_image", "predicted_ms_per_image_at_batch")


def study_cost(attrs: dict[str, Any]) -> str:
    """A study's ``--cost``; ``flops`` for a study made before the option (its front was of FLOPs)."""
    return StudySettings.stored_frozen(attrs.get("settings", {})).get("cost") or Cost.FLOPS


def objective_words(attrs: dict[str, Any]) -> str:
    """What a study's search maximised, in words: ``--objective multi`` minimised the predicted time with ``--cost time``."""
    info = objective_info(attrs.get("objective"))
    if info.multi and study_cost(attrs) == Cost.TIME:
        return "composite proxy score and predicted time per image"
    return info.words


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
                               "prune_reason": t.user_attrs.get("prune_reason"),
                               **{k: t.user_attrs.get(k) for k in PREDICTED_TIMES}}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update(metrics)
        row["collapsed"] = is_trial_collapsed(t, metrics, num_classes)
        row["finished"] = finished(t)
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
        by = "proxy" if objective_info(objective).calibrated and proxy is not None else (
            objective if objective in ("balanced_acc", "train_acc", Objective.FRACTION_MAE) else "val_acc")
    if by == Objective.FRACTION_MAE and "val_fraction_mae" in df:  # the error, minimised: its negative ranks
        df["neg_val_fraction_mae"] = -df["val_fraction_mae"]
    source = {"proxy": "proxy_score", "val_acc": "val_acc", "balanced_acc": "val_balanced_acc", "train_acc": "train_acc",
              Objective.FRACTION_MAE: "neg_val_fraction_mae"}[by]
    if source not in df:
        raise GalaxySynthError(f"cannot rank by {by}: the study's trials have no {source}")
    df["rank_score"] = [guarded(v, c) if by != "proxy" and pd.notna(v) else v
                        for v, c in zip(df[source], df["collapsed"])]
    df["ranked_by"] = by
    df["cost_by"] = COST_COLUMNS[Cost(study_cost(study.user_attrs.get(STUDY_ATTR, {})))]
    df["on_front"] = df["trial"].isin(cost_front(df)["trial"])
    return rank_order(df)


def cost_column(table: pd.DataFrame) -> str:
    """The column a ranking's cost is in: the study's ``--cost`` (``cost_by``, set by :func:`metrics_table`), else FLOPs."""
    return str(table["cost_by"].iloc[0]) if "cost_by" in table and len(table) else "flops"


def cost_front(table: pd.DataFrame, score: str = "rank_score", cost: str | None = None) -> pd.DataFrame:
    """The trials no other beats on both score (higher) and cost (lower): the accuracy-against-inference-cost front.

    Finished, learned (not collapsed) trials with a finite score and a known cost, cheapest first. ``cost``: the
    column (default :func:`cost_column`: the study's ``--cost``, predicted time or FLOPs).
    """
    cost = cost or cost_column(table)
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


def knee_of(front: pd.DataFrame, n_images: int, score: str = "rank_score", cost: str | None = None) -> pd.Series | None:
    """The cheapest trial of the front within one binomial SE of the front's best score (on ``n_images``)."""
    if front.empty:
        return None
    cost = cost or cost_column(front)
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
            **({"mflops": round(t.user_attrs["flops"] / 1e6, 2)} if t.user_attrs.get("flops") else {}),
            **({"ms_per_image": round(t.user_attrs[COST_COLUMNS[Cost.TIME]], 4)}  # predicted: batch 256, one CPU thread
               if t.user_attrs.get(COST_COLUMNS[Cost.TIME]) else {}),
            "arch": spec.describe(),
            "optimizer": f"{cfg.optimizer} lr={cfg.lr:.1e} bs={cfg.batch_size}",
            "seconds": round(t.user_attrs.get("wall_seconds", float("nan")), 1),
        })
    return rows
