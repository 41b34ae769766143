"""How a calibration ranks a study it never saw: leave one study group out, judged per held-out set.

The outer loop holds out one group of :func:`study_groups` at a time. Inside
the training groups only, each candidate calibration (:data:`CANDIDATES`: which metrics it may
use) is scored by an inner leave-one-group-out, the best is fitted on all training groups, and
it ranks the held-out group — so the outer figures describe the procedure that ships, choice of
candidate included. Beside it, on the same held-out sets: the best single signal chosen (with its
sign) on the training groups, ``train_loss`` alone, and any fixed calibration (e.g. the shipped
default) scored as it is.

A held-out *set* is a study with at least :data:`MIN_SET_ARCHITECTURES`
architectures, or a group of searches' picks judged together. Per set: Spearman ρ with a
bootstrap 95% interval over its architectures; regret@1 (the best accuracy in the set minus that
of the architecture ranked first) beside one binomial standard error of the best accuracy on the
test split; top-k recall (k = 5, or half the set when it is smaller). Regret@1 and top-k recall
come with a 95% bootstrap interval over the set's architectures (what another sample of such
architectures could have given; the ground truth's own noise is the seed-vs-seed ρ beside it).

Study-relative signals (:func:`ranked_within_sets`): the same candidates refitted on every metric
replaced by its percentile rank within the set the row is judged in (its study, or its group of
searches' picks), so that a study's level — losses, gradient norms — cannot shift its scores.
Ranks against the *whole* held-out study use more of it than a product could (a search only has
the trials so far): where even these do not transfer better, a frozen reference of a study's
first trials would not either.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from correlation.fitting import strongest_metric
from galaxy_common import bootstrap_ci, bootstrap_interval, spearman
from proxies import CompositeProxy
from synthesis.full_training import TRIAL_SETTINGS

STURDY = ("train_loss", "train_acc", "tse_ema", "train_loss_drop", "val_loss", "val_acc", "grad_norm_mean", "log_params",
          "log_flops", "zc_synflow", "zc_naswot")
CANDIDATES: dict[str, dict[str, Any]] = {
    "all metrics": {},
    "sturdy metrics": {"features": STURDY},  # levels that mean the same on other data: losses, sizes, two zero-cost scores
    "three strongest": {"max_features": 3},
    "training fit and size": {"features": ("train_loss", "train_acc", "tse_ema", "log_params", "log_flops")},
    "train_loss only": {"features": ("train_loss",), "max_features": 1},  # a monotone map: ranks exactly as train_loss
}
Scorer = Callable[[pd.DataFrame], np.ndarray]
REFIT = "composite (refit, candidate chosen in-fold)"
RELATIVE = "study-relative refit (ranks within the study)"


MIN_SET_ARCHITECTURES = 6  # the fewest architectures a held-out study is judged on by itself


def study_groups(rows: pd.DataFrame, min_architectures: int = MIN_SET_ARCHITECTURES) -> pd.Series:
    """The unit a study-level calibration is held out by: one name per row.

    Studies that share an architecture on the same data (one pool measured under several trial
    settings) are one group: holding out one of them while training on its twin would leak its
    ground truth. Studies with fewer than ``min_architectures`` architectures (a search's one or two
    exported picks) are pooled with the other small studies on the same data, split and trial
    settings into one "picks" group: the tops of many searches, judged together.
    """
    measured_alike = [k for k in TRIAL_SETTINGS if k not in ("seed", "max_mflops", "objective")]  # what the signals depend on
    key_columns = [c for c in ("dataset", "data_fingerprint", "merge", "drop", *(f"trial_{k}" for k in measured_alike))
                   if c in rows.columns]
    archs = {s: set(zip(g["dataset"].astype(str), g["spec_hash"].astype(str))) for s, g in rows.groupby("study")}
    parent = {s: s for s in archs}

    def root(s: str) -> str:
        while parent[s] != s:
            s = parent[s]
        return s

    names = sorted(archs)
    for i, a in enumerate(names):  # a few dozen studies: pairwise is instant
        for b in names[i + 1:]:
            if archs[a] & archs[b]:
                parent[root(b)] = root(a)
    members: dict[str, list[str]] = {}
    for s in names:
        members.setdefault(root(s), []).append(s)
    group: dict[str, str] = {}
    small: dict[tuple, list[str]] = {}
    for head, studies in members.items():
        if len(set().union(*(archs[s] for s in studies))) >= min_architectures:
            group.update({s: head if len(studies) == 1 else f"{head} (+{len(studies) - 1} measured alike)" for s in studies})
        else:
            first = rows[rows["study"] == studies[0]].iloc[0]
            small.setdefault(tuple(str(first[c]) for c in key_columns), []).extend(studies)
    for studies in small.values():
        dataset = str(rows.loc[rows["study"] == studies[0], "dataset"].iloc[0])
        prefix = os.path.commonprefix(studies).rstrip("-_") or "searches"
        group.update({s: f"{dataset}: {prefix} picks ({len(studies)} studies)" for s in studies})
    return rows["study"].map(group)


def make_candidate(name: str, features: Sequence[str], label: str = "fitted") -> CompositeProxy:
    spec = dict(CANDIDATES[name])
    allowed = [f for f in spec.pop("features", features) if f in features]
    return CompositeProxy(features=allowed, name=label, learner="linear", **spec)


def evaluation_sets(rows: pd.DataFrame, groups: pd.Series) -> list[tuple[str, str, np.ndarray]]:
    """(set name, its group, row positions): each study big enough on its own, else the whole group."""
    sets = []
    for group in sorted(groups.unique()):
        in_group = np.flatnonzero((groups == group).to_numpy())
        studies = rows.iloc[in_group].groupby("study")
        big = [(s, in_group[(rows.iloc[in_group]["study"] == s).to_numpy()]) for s, g in studies
               if g["spec_hash"].nunique() >= MIN_SET_ARCHITECTURES]
        sets += [(s, group, idx) for s, idx in big] if big else [(group, group, in_group)]
    return sets


def set_scores(pred: np.ndarray, y: np.ndarray, n_test: float) -> dict[str, Any]:
    """ρ [CI], regret@1 against one binomial SE of the best, top-k recall, on one held-out set."""
    best = float(np.max(y))
    se = float(np.sqrt(best * (1 - best) / n_test)) if n_test > 0 else float("nan")
    k = max(1, min(5, len(y) // 2))
    order = np.where(np.isfinite(pred), pred, -np.inf)  # a scorer's NaN ranks last, never first

    def regret_of(i: np.ndarray) -> float:
        return float(np.max(y[i]) - y[i][np.argmax(order[i])])

    def recall_of(i: np.ndarray) -> float:  # positions in the resample: a drawn-twice architecture is two entries
        return len(set(np.argsort(-y[i], kind="stable")[:k]) & set(np.argsort(-order[i], kind="stable")[:k])) / k

    every = np.arange(len(y))
    regret = regret_of(every)
    return {"spearman": spearman(pred, y), "spearman_ci95": bootstrap_ci(pred, y), "regret_at_1": regret,
            "regret_at_1_ci95": bootstrap_interval(regret_of, len(y)), "one_se": se,
            "regret_within_1se": bool(regret <= se), "top_k": k, "top_k_recall": recall_of(every),
            "top_k_recall_ci95": bootstrap_interval(recall_of, len(y))}


def ranked_within_sets(rows: pd.DataFrame, groups: pd.Series, features: Sequence[str],
                       sets: list[tuple[str, str, np.ndarray]] | None = None) -> pd.DataFrame:
    """``rows`` with each feature replaced by its percentile rank in (0, 1] within the unit the row is judged in:
    its study where that is a set of its own (``sets``: :func:`evaluation_sets`), else its group (a group of picks)."""
    unit = groups.astype(str).to_numpy().copy()
    for name, _, idx in evaluation_sets(rows, groups) if sets is None else sets:
        unit[idx] = name
    out = rows.copy()
    for f in features:
        out[f] = rows.groupby(unit)[f].rank(pct=True)
    return out


def _choose(train: pd.DataFrame, target: str, features: Sequence[str], groups: pd.Series) -> tuple[str, dict[str, float]]:
    """The candidate with the best mean per-set ρ over an inner leave-one-group-out of these rows."""
    inner = evaluation_sets(train, groups)
    scores = {}
    for name in CANDIDATES:
        per_group = []  # a group's sets averaged first: one pool measured five ways counts once
        for group in groups.unique():
            fit_rows = train[(groups != group).to_numpy()]
            model = make_candidate(name, features).fit(fit_rows, fit_rows[target].to_numpy(float))
            rhos = [spearman(model.predict(train.iloc[idx]), train.iloc[idx][target].to_numpy(float))
                    for _, g, idx in inner if g == group]
            per_group.append(_mean(rhos))
        scores[name] = _mean(per_group)
    return max(scores, key=lambda n: (np.nan_to_num(scores[n], nan=-2.0), -list(CANDIDATES).index(n))), scores


def seed_vs_seed(per_seed: pd.DataFrame | None, held: pd.DataFrame, target: str) -> float | None:
    """The ground truth's own repeatability on a set: ρ between two seeds' full trainings of its architectures
    (the ceiling any proxy is judged against there; None without two seeds)."""
    if per_seed is None:
        return None
    keys = held[["study", "trial", "full_epochs"]].drop_duplicates()
    wide = per_seed.merge(keys, on=["study", "trial", "full_epochs"]).pivot_table(
        index=["study", "trial", "full_epochs"], columns="gt_seed", values=target).dropna()
    return spearman(wide.iloc[:, 0].to_numpy(), wide.iloc[:, 1].to_numpy()) if wide.shape[1] >= 2 and len(wide) >= 3 else None


def leave_one_group_out(rows: pd.DataFrame, target: str, features: Sequence[str], groups: pd.Series,
                        fixed: dict[str, Scorer] | None = None, progress: Callable[[str], None] | None = None,
                        per_seed: pd.DataFrame | None = None, fitted_on: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """Per held-out set: the refit (candidate chosen inside the training groups), the best single signal,
    train_loss alone and each ``fixed`` scorer; then the means over groups. ``per_seed``: the rows before
    averaging over seeds, for each set's ground-truth repeatability. ``fitted_on``: for a fixed scorer, the
    studies it was fitted on; on a group holding any of them its figures are marked in-sample."""
    rows, groups = rows.reset_index(drop=True), groups.reset_index(drop=True)
    y = rows[target].to_numpy(float)
    n_test = rows["n_test"].to_numpy(float) if "n_test" in rows else np.full(len(rows), np.nan)
    sets, chosen = [], {}
    every_set = evaluation_sets(rows, groups)
    relative = ranked_within_sets(rows, groups, features, every_set)
    for group in sorted(groups.unique()):
        if progress:
            progress(group)
        train_mask = (groups != group).to_numpy()
        train = rows[train_mask]
        if groups[train_mask].nunique() < 2:  # an inner leave-one-group-out needs two training groups
            continue
        name, inner = _choose(train, target, features, groups[train_mask])
        relative_name, relative_inner = _choose(relative[train_mask], target, features, groups[train_mask])
        chosen[group] = {"candidate": name, "inner_spearman": inner,
                         "study_relative_candidate": relative_name, "study_relative_inner_spearman": relative_inner}
        model = make_candidate(name, features).fit(train, y[train_mask])
        relative_model = make_candidate(relative_name, features).fit(relative[train_mask], y[train_mask])
        single, sign = strongest_metric({c: train[c].to_numpy(float) for c in features}, y[train_mask])
        studies_in_group = set(rows.loc[~train_mask, "study"].astype(str))
        in_sample = [label for label, fitted in (fitted_on or {}).items() if fitted & studies_in_group]
        for set_name, g, idx in every_set:
            if g != group:
                continue
            held = rows.iloc[idx]
            scorers: dict[str, np.ndarray] = {REFIT: model.predict(held),
                                               RELATIVE: relative_model.predict(relative.iloc[idx]),
                                               f"best single in-fold ({single})": sign * held[single].to_numpy(float),
                                               "train_loss alone": -held["train_loss"].to_numpy(float)}
            for label, score in (fixed or {}).items():
                scorers[label] = score(held)
            sets.append({"set": set_name, "group": group, "architectures": int(held["spec_hash"].nunique()), "rows": len(idx),
                         "candidate": name, "best_single": single,
                         "ground_truth_seed_vs_seed_spearman": seed_vs_seed(per_seed, held, target),
                         "in_sample": in_sample,
                         "scores": {k: set_scores(v, y[idx], float(np.nanmedian(n_test[idx]))) for k, v in scorers.items()}})
    return {"protocol": "leave one study group out; candidate and best single signal chosen on the training groups only",
            "held_out_sets": sets, "chosen_per_fold": chosen, "means": _means(sets)}


def _means(sets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scorer, the mean over held-out *groups* (a group's sets averaged first, so one pool measured five
    ways counts once) of ρ, regret@1 and top-k recall, and how many sets had regret@1 within 1 SE; a fixed
    calibration's in-sample groups are left out of its means."""
    per_group: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for s in sets:
        for label, sc in s["scores"].items():
            if label in s.get("in_sample", ()):
                continue  # a fixed calibration on the rows it was fitted on says nothing about transfer
            key = "best single in-fold" if label.startswith("best single") else label
            per_group.setdefault(key, {}).setdefault(s["group"], []).append(sc)
    out = {}
    for key, groups in per_group.items():
        def mean_of(stat: str) -> float:
            return _mean([_mean([sc[stat] for sc in scs]) for scs in groups.values()])

        every = [sc for scs in groups.values() for sc in scs]
        out[key] = {"mean_spearman": mean_of("spearman"), "mean_regret_at_1": mean_of("regret_at_1"),
                    "mean_top_k_recall": mean_of("top_k_recall"), "groups": len(groups),
                    "sets_within_1se": f"{sum(sc['regret_within_1se'] for sc in every)}/{len(every)}"}
    return out


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN, without numpy's warning, when there are none: e.g. a constant prediction)."""
    finite = [float(v) for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def choose_candidate(rows: pd.DataFrame, target: str, features: Sequence[str], groups: pd.Series) -> tuple[str, dict[str, float]]:
    """The candidate that ships: chosen by leave-one-group-out over every group (the procedure the outer figures judged)."""
    return _choose(rows.reset_index(drop=True), target, features, groups.reset_index(drop=True))
