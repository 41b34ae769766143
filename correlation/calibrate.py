"""``galaxy-synth correlate``: select → full-train (resumable) → fit → honest report, per study.

A study's calibration outputs go to its own folder (``RESULTS/studies/<study>/``). The refitted
calibration is also *promoted* to ``RESULTS/proxy_weights.json`` (which new studies start with)
only when it ranks the ground truth better, out of fold, than the calibration the study ran with
scores on the same rows without any refitting: with a dozen rows a refit can rank worse than
what it would replace.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from correlation.fitting import correlation_report, cross_validate, numeric_features
from correlation.report import write_report
from correlation.selection import select_for_ground_truth
from correlation.transfer import REFIT, choose_candidate, leave_one_group_out, make_candidate, study_groups
from galaxy_common import bootstrap_ci, spearman
from galaxy_common import read_table, write_table
from proxies import CompositeProxy
from proxies import domain_of
from proxies import METRIC_NAMES
from proxies import ZERO_COST_NAMES
from synthesis import DataError, GalaxySynthError
from synthesis.full_training import (
    TARGETS,
    FullTrainingSettings,
    GroundTruthStore,
    check_full_epochs,
    fill_arch_keys,
    ground_truth_rows,
    mean_rows_over_seeds,
    merge_ground_truth_csv,
    open_ground_truth,
    read_ground_truth_tables,
    train_jobs,
)
from synthesis.search import metrics_table
from synthesis.search import OpenedStudy, reopen_study, shipped_calibration

FEATURES = tuple(METRIC_NAMES) + tuple(ZERO_COST_NAMES)
MIN_GROUND_TRUTH = 6  # the fewest rows a cross-validated report can be made from


def _fit_and_write(table: pd.DataFrame, target: str, features: list[str], name: str, provenance: dict[str, Any],
                   out: Path, report: dict[str, Any], cv, singles: pd.DataFrame,
                   proxy: CompositeProxy | None = None) -> tuple[CompositeProxy, list[Path]]:
    """Fit the calibration (``proxy``, else one on every feature) on every row, stamp provenance and hash,
    write report + weights + plots."""
    fitted = (proxy or CompositeProxy(features=features, name=name)).fit(table, target)
    fitted.provenance = {**provenance, "target": target, "n_ground_truth": int(len(table)),
                         "composite_spearman_cv": report["composite_spearman_cv"], "protocol": report["protocol"],
                         "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    report["calibration_hash"] = fitted.calibration_hash
    return fitted, write_report(out, report, cv, singles, fitted)


def calibrate_table(path: Path, target: str, results: Path, features: list[str] | None = None, folds: int = 5,
                    repeats: int = 10, seed: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """``correlate --table``: fit and report on any CSV of metrics with a target column (into RESULTS/tables/<name>/)."""
    table = read_table(path)
    if target not in table.columns:
        raise DataError(f"{path} has no target column {target!r} (columns: {', '.join(table.columns)})")
    features = features or numeric_features(table, target)
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise DataError(f"{path} has no column {missing[0]!r} (asked for by --features)")
    try:
        report, cv, singles = correlation_report(table, target, features, folds, repeats, seed)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    rows = table[pd.to_numeric(table[target], errors="coerce").notna()]
    out = Path(results) / "tables" / path.stem
    _, written = _fit_and_write(rows, target, features, f"fitted:{path.stem}", {"dataset": str(path)}, out, report, cv, singles)
    return report, written


def check_calibration_request(ground_truth: int, seeds: int, full_epochs: int, target: str) -> None:
    """Requests no report can come from: one line, before any training."""
    if ground_truth < MIN_GROUND_TRUTH:
        raise GalaxySynthError(f"--ground-truth {ground_truth}: a cross-validated report needs at least "
                               f"{MIN_GROUND_TRUTH} fully trained architectures (24 or more to calibrate well)")
    if seeds < 1:
        raise GalaxySynthError("--seeds must be >= 1")
    check_full_epochs(full_epochs)
    if target not in TARGETS:
        raise GalaxySynthError(f"--target must be one of {', '.join(TARGETS)} in study mode, not {target!r}")


def frozen_proxy(opened: OpenedStudy) -> CompositeProxy:
    """The calibration the study ran with (the score its sampler optimised), else the shipped default."""
    frozen = opened.attrs.get("calibration")
    return CompositeProxy.from_dict(frozen) if frozen else CompositeProxy.load(shipped_calibration())


def measure_ground_truth(opened: OpenedStudy, training: FullTrainingSettings, chosen: list[int]) -> GroundTruthStore:
    """Full-train every chosen trial with every seed (seed-major, resumable: stored ones are reused),
    several at once where the allotted cores allow (:mod:`synthesis.full_training.pool`)."""
    store = open_ground_truth(training.storage_url)
    trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
    fill_arch_keys(store, training.study_name, trials, opened.prepared(), training.precision)
    jobs = training.jobs(chosen)
    todo = [j for j in jobs if store.get(training.study_name, j.trial, training.epochs, j.seed) is None]
    train_jobs(opened, training, store, todo, len(jobs), "ground truth")
    return store


def mean_over_seeds(store: GroundTruthStore, study: str, full_epochs: int, seed_list: list[int]) -> pd.DataFrame:
    """One row per architecture with every requested seed: the mean of each target, summed training time."""
    gt = store.table(study, full_epochs)
    if gt.empty:
        return pd.DataFrame(columns=["trial_number", *TARGETS, "full_train_seconds"])
    gt = gt[gt["seed"].isin(seed_list)]
    gt = (gt.groupby("trial_number").agg(**{t: (t, "mean") for t in TARGETS}, full_train_seconds=("wall_seconds", "sum"),
                                          n_seeds=("seed", "nunique")).reset_index())
    return gt[gt["n_seeds"] == len(seed_list)].drop(columns="n_seeds")


def seed_repeatability(store: GroundTruthStore, study: str, full_epochs: int, seed_list: list[int], target: str) -> dict[str, Any] | None:
    """Seed-vs-seed Spearman ρ of the ground truth (first two seeds) and the ceiling it sets for any proxy."""
    if len(seed_list) < 2:
        return None
    gt = store.table(study, full_epochs)
    wide = gt[gt["seed"].isin(seed_list[:2])].pivot_table(index="trial_number", columns="seed", values=target)
    wide = wide.dropna()
    if len(wide) < 4:
        return None
    a, b = wide[seed_list[0]].to_numpy(), wide[seed_list[1]].to_numpy()
    rho = spearman(a, b)
    reliability = 2 * rho / (1 + rho) if rho > 0 else float("nan")  # Spearman-Brown: the mean of two seeds
    return {"seed_vs_seed_spearman": rho, "seed_vs_seed_spearman_ci95": bootstrap_ci(a, b), "n": int(len(wide)),
            "seeds": seed_list[:2],
            "ceiling_one_seed": float(np.sqrt(rho)) if rho > 0 else float("nan"),
            "ceiling_mean_of_seeds": float(np.sqrt(reliability)) if rho > 0 else float("nan"),
            "note": "no proxy can rank a noisy target better than the target ranks itself: ceiling ≈ √(reliability), "
                    "reliability of the mean of two seeds by Spearman-Brown"}


def calibrate_study(storage: str, study_name: str | None, results: Path, ground_truth: int = 24, top: int = 3,
                    full_epochs: int = 30, target: str = "accuracy", seed: int = 0, device: str = "auto",
                    folds: int = 5, repeats: int = 10, progress: bool = True,
                    seeds: int = 1, save_ground_truth: Path | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Full-train ``ground_truth`` chosen trials, fit the composite on them, report out-of-fold.

    ``seeds`` > 1 trains every chosen architecture with seeds ``seed .. seed+seeds-1`` and uses the
    mean of their test metrics as the ground truth: one seed's ranking is itself noisy (on gz1 at
    15 epochs two seeds agree at Spearman ≈ 0.70, docs/BENCHMARKS.md §10), which caps what any
    proxy can show against it.
    """
    check_calibration_request(ground_truth, seeds, full_epochs, target)
    opened = reopen_study(storage, study_name, results, progress, device)
    name = opened.study.study_name
    # Select by the calibration the study was created with (the score its sampler optimised), not by a
    # newer proxy_weights.json: that keeps a repeated run's selection, and its ground truth, the same.
    proxy = frozen_proxy(opened)
    table = metrics_table(opened.study, proxy)
    table = table[table["finished"]].reset_index(drop=True)
    if len(table) < MIN_GROUND_TRUTH:
        raise GalaxySynthError(f"study {name!r} has {len(table)} completed trials; need at least {MIN_GROUND_TRUTH} to calibrate")
    chosen = select_for_ground_truth(table.set_index("trial")["proxy_score"], ground_truth, top)
    training = FullTrainingSettings.of(opened.settings, full_epochs, seed, seeds)
    seed_list = list(training.seeds)
    store = measure_ground_truth(opened, training, chosen)

    # every architecture with all requested seeds (including ones export trained beyond the selection)
    gt = mean_over_seeds(store, name, full_epochs, seed_list)
    merged = table.merge(gt, left_on="trial", right_on="trial_number")
    features = [f for f in numeric_features(merged, target) if f in FEATURES]
    report, cv, singles = correlation_report(merged, target, features, folds, repeats, seed, progress=progress)
    _add_study_comparisons(report, merged, target, features, folds, repeats, seed, progress, proxy,
                           seed_repeatability(store, name, full_epochs, seed_list, target))
    report["ground_truth"] = merged[["trial", *TARGETS, "full_train_seconds"]].to_dict(orient="records")
    report["full_epochs"] = full_epochs
    report["ground_truth_seeds"] = seed_list
    out = opened.settings.study_dir
    write_table(merged, out / "ground_truth_table.csv")
    # Every full training this study paid for, self-contained, for pooling across studies and machines.
    rows = ground_truth_rows(opened, store)
    written_rows = [write_table(rows, out / "ground_truth_rows.csv")]
    if save_ground_truth is not None:
        written_rows.append(merge_ground_truth_csv(rows, save_ground_truth))
    provenance = {"dataset": opened.settings.data or "embedded procedural galaxies",
                  "class_names": opened.attrs.get("class_names"), "study": name, "full_epochs": full_epochs,
                  "ground_truth_seeds": seed_list, "domain": domain_of(merged, opened.settings.frozen() | {
                      "data": opened.settings.domain_facts()["dataset"]})}
    fitted, written = _fit_and_write(merged, target, features, f"fitted:{name}", provenance, out, report, cv, singles)
    report["promoted"] = promote_if_better(fitted, report, Path(results))
    return report, written + written_rows


def _add_study_comparisons(report: dict[str, Any], merged: pd.DataFrame, target: str, features: list[str], folds: int,
                           repeats: int, seed: int, progress: bool, proxy: CompositeProxy,
                           repeat: dict[str, Any] | None) -> None:
    """What a study's report sets the refit beside: the other targets, the calibration in use, the ground truth's ceiling."""
    # Only the composite's out-of-fold ρ for the other targets: no single-metric bootstraps needed.
    report["other_targets"] = {}
    for other in (t for t in TARGETS if t != target):
        cv_other = cross_validate(merged, other, features, folds, repeats, seed, progress=progress)
        report["other_targets"][other] = {
            "composite_spearman_cv": float(np.mean([spearman(p, cv_other.target) for p in cv_other.composite]))}
    # The calibration the study ran with, scored on these rows as it is (nothing refitted).
    ran_with = proxy.predict(merged)
    y = merged[target].to_numpy(float)
    report["calibration_in_use"] = {"name": proxy.name, "hash": proxy.calibration_hash, "spearman": spearman(ran_with, y),
                                    "spearman_ci95": bootstrap_ci(ran_with, y),
                                    "note": "scored without refitting; out-of-sample unless it was fitted on these rows"}
    if repeat is not None:
        report["ground_truth_repeatability"] = repeat
        ceiling = repeat["ceiling_mean_of_seeds"]
        report["composite_spearman_cv_over_ceiling"] = report["composite_spearman_cv"] / ceiling if ceiling > 0 else None


def calibrate_tables(paths: list[Path], target: str, results: Path, seeds: int = 2, folds: int = 5, repeats: int = 10,
                     seed: int = 0, progress: bool = True, name: str = "pooled") -> tuple[dict[str, Any], list[Path]]:
    """``correlate --tables``: fit on ground-truth CSVs of several studies, judged on studies it never saw.

    The rows are averaged over each architecture's first ``seeds`` seeds and grouped by
    :func:`~correlation.transfer.study_groups`. The headline (``report["transfer"]``,
    :mod:`correlation.transfer`) holds out one group at a time: the candidate calibration is chosen
    and fitted on the other groups, and each held-out study (or group of searches' picks) gets ρ,
    regret@1 against one SE and top-k recall, beside the best single signal chosen in-fold,
    ``train_loss`` alone and the shipped default. The calibration written is the candidate the same
    procedure chooses on every group. Row-level k-fold figures are reported beside it.
    """
    if target not in TARGETS:
        raise GalaxySynthError(f"--target must be one of {', '.join(TARGETS)} with --tables, not {target!r}")
    pooled = read_ground_truth_tables(paths)
    rows = mean_rows_over_seeds(pooled, seeds).reset_index(drop=True)
    if len(rows) < MIN_GROUND_TRUTH:
        raise GalaxySynthError(f"{len(rows)} architectures with {seeds} seed(s) in {', '.join(map(str, paths))}; "
                               f"need at least {MIN_GROUND_TRUTH} (try --seeds 1)")
    features = [f for f in numeric_features(rows, target) if f in FEATURES]
    groups = study_groups(rows)
    grouped = groups.nunique() > 1
    report, cv, singles = correlation_report(rows, target, features, folds, repeats, seed, progress=progress,
                                             groups=groups.to_numpy() if grouped else None)
    proxy = None
    if grouped:
        within, _, _ = correlation_report(rows, target, features, folds, repeats, seed, progress=progress)
        report["within_studies_kfold"] = {k: within[k] for k in ("composite_spearman_cv", "composite_spearman_cv_ci95",
                                                                   "protocol")}
        shipped = CompositeProxy.load(shipped_calibration())
        label = f"shipped default {shipped.name} (not refit)"
        fixed = {label: shipped.predict} if set(shipped.features_) <= set(rows) else {}
        fitted_on = {label: set(shipped.provenance.get("rows_per_study", {}))}
        report["transfer"] = leave_one_group_out(rows, target, features, groups, fixed=fixed, per_seed=pooled,
                                                 fitted_on=fitted_on)
        candidate, inner = choose_candidate(rows, target, features, groups)
        report["transfer"]["shipped_candidate"] = {"candidate": candidate, "inner_spearman": inner}
        report["transfer_to_unseen_study_spearman"] = report["transfer"]["means"][REFIT]["mean_spearman"]
        proxy = make_candidate(candidate, features, f"fitted:{name}")
    report["tables"] = [str(p) for p in paths]
    report["rows_per_study"] = rows["study"].value_counts().to_dict()
    report["ground_truth_seeds"] = seeds
    provenance = {"dataset": sorted(map(str, rows["dataset"].unique())) if "dataset" in rows else None,
                  "tables": [Path(p).name for p in paths], "rows_per_study": report["rows_per_study"],
                  "ground_truth_seeds": seeds, "domain": domain_of(rows),
                  "transfer_to_unseen_study_spearman": report.get("transfer_to_unseen_study_spearman")}
    out = Path(results) / "tables" / name
    write_table(rows, out / "ground_truth_table.csv")
    _, written = _fit_and_write(rows, target, features, f"fitted:{name}", provenance, out, report, cv, singles, proxy)
    if "transfer" in report and report["transfer"]["held_out_sets"]:
        from correlation.report import plot_transfer

        plot_transfer(report["transfer"], out / "transfer.png")
        written.append(out / "transfer.png")
    return report, written


def promote_if_better(fitted: CompositeProxy, report: dict[str, Any], results: Path) -> dict[str, Any]:
    """Copy the refit to RESULTS/proxy_weights.json (what new studies start with) when it ranks better than
    the calibration in use did on the same rows; say which and why either way."""
    refit, in_use = report["composite_spearman_cv"], report["calibration_in_use"]["spearman"]
    better = np.isfinite(refit) and (not np.isfinite(in_use) or refit > in_use)
    target = results / "proxy_weights.json"
    if better:
        fitted.save(target)
    return {"promoted": bool(better), "to": str(target) if better else None,
            "why": (f"refit out-of-fold ρ {refit:.3f} vs the calibration in use {in_use:.3f} on the same rows"
                    + ("" if better else ": kept the calibration in use for new studies"))}

