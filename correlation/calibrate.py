"""``galaxy-synth correlate`` on a study: select → full-train (resumable) → fit → honest report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from correlation.fitting import correlation_report, cross_validate, numeric_features, spearman
from correlation.ground_truth import TARGETS, GroundTruthStore, full_train, select_for_ground_truth
from correlation.report import write_report
from proxies.composite import CompositeProxy
from proxies.metrics import METRIC_NAMES
from proxies.zero_cost import ZERO_COST_NAMES
from synthesis.data import GalaxyImages
from synthesis.errors import DataError, GalaxySynthError
from synthesis.study import (DEFAULT_CALIBRATION, STUDY_ATTR, StudySettings, check_same_experiment, load_existing_study,
                             load_study_data,
                             metrics_table, write_table)
from synthesis.device import resolve_device

FEATURES = tuple(METRIC_NAMES) + tuple(ZERO_COST_NAMES)


def settings_from_study(study: optuna.Study, results: str, storage: str) -> StudySettings:
    """Rebuild the data settings a study was created with (they are frozen in its attrs)."""
    attrs = study.user_attrs.get(STUDY_ATTR)
    if attrs is None:
        raise GalaxySynthError(f"study {study.study_name!r} was not made by galaxy-synth")
    frozen = attrs["settings"]
    keys = ("data", "size", "crop", "merge", "drop", "max_samples", "val_subset", "seed", "epochs", "objective",
            "synthetic_n", "loss", "label_smoothing", "strategy")
    return StudySettings(**{k: frozen[k] for k in keys if k in frozen},
                         extra_columns=attrs.get("extra_names") or None, results=results, storage=storage,
                         study=study.study_name)


def reopen_study(storage: str, study_name: str, results: Path, progress: bool = True) -> tuple[optuna.Study, dict[str, Any], GalaxyImages]:
    """An existing study, its galaxy-synth attrs and its data, checked to be the data it was made on."""
    study = load_existing_study(study_name, storage)
    attrs = study.user_attrs.get(STUDY_ATTR) or {}
    settings = settings_from_study(study, str(results), storage)
    settings.progress = progress
    data = load_study_data(settings)
    check_same_experiment(attrs, settings, data)
    return study, attrs, data


def _fit_and_write(table: pd.DataFrame, target: str, features: list[str], name: str, provenance: dict[str, Any],
                   results: Path, report: dict[str, Any], cv, singles: pd.DataFrame) -> list[Path]:
    """Fit the calibration on every row, stamp provenance and hash, write report + weights + plots."""
    fitted = CompositeProxy(features=features, name=name).fit(table, target)
    fitted.provenance = {**provenance, "target": target, "n_ground_truth": int(len(table)),
                         "composite_spearman_cv": report["composite_spearman_cv"], "protocol": report["protocol"],
                         "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    report["calibration_hash"] = fitted.calibration_hash
    return write_report(results, report, cv, singles, fitted)


def calibrate_table(path: Path, target: str, results: Path, features: list[str] | None = None, folds: int = 5,
                    repeats: int = 10, seed: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """``correlate --table``: fit and report on any CSV of metrics with a target column."""
    if not path.is_file():
        raise DataError(f"table not found: {path}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None
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
    return report, _fit_and_write(rows, target, features, f"fitted:{path.stem}", {"dataset": str(path)},
                                  results, report, cv, singles)


def calibrate_study(storage: str, study_name: str, results: Path, ground_truth: int = 24, top: int = 3,
                    full_epochs: int = 30, target: str = "accuracy", seed: int = 0, device: str = "auto",
                    folds: int = 5, repeats: int = 10, progress: bool = True,
                    seeds: int = 1) -> tuple[dict[str, Any], list[Path]]:
    """Full-train ``ground_truth`` chosen trials, fit the composite on them, report out-of-fold.

    ``seeds`` > 1 trains every chosen architecture with seeds ``seed .. seed+seeds-1`` and uses the
    mean of their test metrics as the ground truth: one seed's ranking is itself noisy (on gz1 at
    15 epochs two seeds agree at Spearman ≈ 0.70, docs/BENCHMARKS.md §10), which caps what any
    proxy can show against it.
    """
    if seeds < 1:
        raise GalaxySynthError("--seeds must be >= 1")
    if target not in TARGETS:
        raise GalaxySynthError(f"--target must be one of {', '.join(TARGETS)} in study mode, not {target!r}")
    study, attrs, data = reopen_study(storage, study_name, results, progress)
    # Select by the calibration the study was created with (the score TPE optimised), not by a
    # newer proxy_weights.json: that keeps a repeated run's selection, and its ground truth, the same.
    frozen = attrs.get("calibration")
    proxy = CompositeProxy.from_dict(frozen) if frozen else CompositeProxy.load(DEFAULT_CALIBRATION)
    table = metrics_table(study, proxy)
    table = table[table["state"] == "COMPLETE"].reset_index(drop=True)
    if len(table) < 6:
        raise GalaxySynthError(f"study {study_name!r} has {len(table)} completed trials; need at least 6 to calibrate")
    chosen = select_for_ground_truth(table.set_index("trial")["proxy_score"], ground_truth, top)

    store = GroundTruthStore(storage)
    dev = resolve_device(device)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    from tqdm.auto import tqdm

    seed_list = list(range(seed, seed + seeds))
    # seed-major order: a first pass over every architecture comes before any repeat
    jobs = [(n, s) for s in seed_list for n in chosen]
    todo = [(n, s) for n, s in jobs if store.get(study_name, n, full_epochs, s) is None]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="ground truth", unit="model", disable=not progress)
    for n, s in todo:
        res = full_train(study_name, n, trials[n].user_attrs, data, attrs["plan"], full_epochs, s, dev,
                         results / "ground_truth" / study_name, progress=progress)
        store.add(res.record)  # stored at once: a kill loses at most the model in training
        bar.update(1)
        bar.set_postfix_str(f"trial {n}: acc {res.record.accuracy:.3f} in {res.record.wall_seconds:.0f} s")
    bar.close()

    gt = store.table(study_name, full_epochs)
    # every architecture with all requested seeds (including ones export trained beyond the selection)
    gt = gt[gt["seed"].isin(seed_list)]
    gt = (gt.groupby("trial_number").agg(**{t: (t, "mean") for t in TARGETS}, full_train_seconds=("wall_seconds", "sum"),
                                          n_seeds=("seed", "nunique")).reset_index())
    gt = gt[gt["n_seeds"] == len(seed_list)].drop(columns="n_seeds")
    merged = table.merge(gt, left_on="trial", right_on="trial_number")
    features = [f for f in numeric_features(merged, target) if f in FEATURES]
    report, cv, singles = correlation_report(merged, target, features, folds, repeats, seed, progress=progress)
    # Only the composite's out-of-fold ρ for the other targets: no single-metric bootstraps needed.
    report["other_targets"] = {}
    for other in (t for t in TARGETS if t != target):
        cv_other = cross_validate(merged, other, features, folds, repeats, seed, progress=progress)
        report["other_targets"][other] = {
            "composite_spearman_cv": float(np.mean([spearman(p, cv_other.target) for p in cv_other.composite]))}
    report["ground_truth"] = merged[["trial", *TARGETS, "full_train_seconds"]].to_dict(orient="records")
    report["full_epochs"] = full_epochs
    report["ground_truth_seeds"] = seed_list
    write_table(merged, results / "ground_truth_table.csv")
    provenance = {"dataset": attrs.get("settings", {}).get("data") or "embedded procedural galaxies",
                  "class_names": attrs.get("class_names"), "study": study_name, "full_epochs": full_epochs,
                  "ground_truth_seeds": seed_list}
    return report, _fit_and_write(merged, target, features, f"fitted:{study_name}", provenance, results, report, cv, singles)
