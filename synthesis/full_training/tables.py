"""Ground truth as small self-contained CSVs that outlive any results folder, and pooling them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from synthesis.full_training.store import TARGETS, GroundTruthStore
from synthesis import dataset_name

TRIAL_SETTINGS = ("size", "crop", "max_samples", "val_subset", "epochs", "schedule", "warmup", "precision", "loss",
                  "label_smoothing", "seed", "max_mflops", "objective")


CSV_KEY = ("study", "trial", "full_epochs", "gt_seed")


def ground_truth_rows(opened: Any, store: GroundTruthStore) -> pd.DataFrame:
    """Every stored full training of a study as self-contained rows: what was trained (spec, optimiser),
    on what (data, split, trial settings), what its trial measured, and what full training scored."""
    from synthesis.search import is_trial_collapsed, trial_metrics

    study = opened.study
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    gt = store.table(study.study_name)
    settings = opened.settings
    rows = []
    for _, r in gt.iterrows():
        t = trials.get(int(r["trial_number"]))
        if t is None:
            continue
        row = {"dataset": dataset_name(settings.data), "data_path": settings.data or "",
               "data_fingerprint": opened.attrs.get("fingerprint"),
               "study": study.study_name, "trial": int(r["trial_number"]), "trial_state": t.state.name,
               "spec_hash": r["spec_hash"], "arch_json": json.dumps(t.user_attrs.get("arch"), sort_keys=True),
               "train_config_json": json.dumps(t.user_attrs.get("train_config"), sort_keys=True),
               "strategy": t.user_attrs.get("strategy", settings.strategy),
               "merge": ";".join(settings.merge), "drop": ";".join(settings.drop),
               "n_train": len(opened.plan["train"]), "n_test": len(opened.plan["test"])}
        row.update({f"trial_{k}": getattr(settings, k) for k in TRIAL_SETTINGS})
        metrics = trial_metrics(t)
        row.update(metrics)
        row["collapsed"] = is_trial_collapsed(t, metrics, len(opened.data.class_names))
        row.update({"full_epochs": int(r["epochs"]), "gt_seed": int(r["seed"]), "full_schedule": "cosine",
                    "gt_precision": settings.precision, **{k: float(r[k]) for k in (*TARGETS, "test_loss")},
                    "full_train_seconds": float(r["wall_seconds"]), "gt_device": r["device"],
                    "measured": str(r["created"])[:19]})
        if r.get("fraction_mae") is not None and pd.notna(r.get("fraction_mae")):
            row["fraction_mae"] = float(r["fraction_mae"])  # vote-fraction error (--soft-labels studies)
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["trial", "full_epochs", "gt_seed"], ignore_index=True) if rows else pd.DataFrame()


def merge_ground_truth_csv(rows: pd.DataFrame, path: Path) -> Path:
    """Add these rows to a ground-truth CSV (rows already there with the same key are replaced)."""
    from galaxy_common import write_table

    path = Path(path)
    if path.is_file():
        old = pd.read_csv(path)
        keys = set(map(tuple, rows[list(CSV_KEY)].astype(str).to_numpy()))
        old = old[[tuple(k) not in keys for k in old[list(CSV_KEY)].astype(str).to_numpy()]]
        rows = pd.concat([old, rows], ignore_index=True).sort_values(list(CSV_KEY), ignore_index=True)
    return write_table(rows, path)


def read_ground_truth_tables(paths: list[Path]) -> pd.DataFrame:
    """Pool ground-truth CSVs (from ``correlate``'s export); one line naming any file that is not one."""
    from galaxy_common import read_table
    from synthesis import DataError

    frames = []
    for p in map(Path, paths):
        df = read_table(p, "ground-truth table")
        missing = [c for c in (*CSV_KEY, *TARGETS) if c not in df.columns]
        if missing:
            raise DataError(f"{p} is not a galaxy-synth ground-truth table (no column {missing[0]!r})")
        frames.append(df.assign(table=p.name))
    return pd.concat(frames, ignore_index=True)


def mean_rows_over_seeds(rows: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """One row per (study, trial, full epochs) that has at least ``seeds`` seeds: targets averaged over
    its first ``seeds`` seeds, trial metrics kept."""
    rows = rows.sort_values("gt_seed")
    first = rows.groupby(["study", "trial", "full_epochs"], sort=False).head(seeds)
    agg = first.groupby(["study", "trial", "full_epochs"]).agg(
        **{t: (t, "mean") for t in TARGETS}, n_seeds=("gt_seed", "nunique"), full_train_seconds=("full_train_seconds", "sum"))
    agg = agg[agg["n_seeds"] >= seeds].reset_index()
    meta = rows.drop(columns=[*TARGETS, "gt_seed", "full_train_seconds", "test_loss", "measured", "gt_device"],
                     errors="ignore").drop_duplicates(["study", "trial", "full_epochs"])
    return agg.merge(meta, on=["study", "trial", "full_epochs"])
