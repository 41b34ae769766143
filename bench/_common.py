"""Shared preamble of the ground-truth benchmarks: reopen a study and take its cheapest ground truth."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from synthesis.full_training import GroundTruthStore, open_ground_truth
from synthesis.search.study import OpenedStudy, reopen_study
from synthesis.locations import default_storage_url


def fastest_ground_truth(results: Path, study_name: str, epochs: int, seed: int, archs: int
                         ) -> tuple[OpenedStudy, GroundTruthStore, pd.DataFrame, dict[int, optuna.trial.FrozenTrial]]:
    """(the opened study, store, the ``archs`` fastest ground-truth rows of ``seed``, trials by number)."""
    storage = default_storage_url(results)
    opened = reopen_study(storage, study_name, results, progress=False)
    study = opened.study
    store = open_ground_truth(storage)
    gt = store.table(study_name, epochs)
    gt = gt[gt["seed"] == seed].sort_values("wall_seconds").head(archs)
    if gt.empty:
        raise SystemExit(f"no ground truth for {study_name!r} at {epochs} epochs, seed {seed}: run galaxy-synth correlate first")
    return opened, store, gt, {t.number: t for t in study.get_trials(deepcopy=False)}
