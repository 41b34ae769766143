"""Shared preamble of the ground-truth benchmarks: reopen a study and take its cheapest ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from correlation.calibrate import reopen_study
from correlation.ground_truth import GroundTruthStore
from synthesis.data import GalaxyImages
from synthesis.study import default_storage_url


def fastest_ground_truth(results: Path, study_name: str, epochs: int, seed: int, archs: int
                         ) -> tuple[dict[str, Any], GalaxyImages, GroundTruthStore, pd.DataFrame, dict[int, optuna.trial.FrozenTrial]]:
    """(study attrs, data, store, the ``archs`` fastest ground-truth rows of ``seed``, trials by number)."""
    storage = default_storage_url(results)
    study, attrs, data = reopen_study(storage, study_name, results, progress=False)
    store = GroundTruthStore(storage)
    gt = store.table(study_name, epochs)
    gt = gt[gt["seed"] == seed].sort_values("wall_seconds").head(archs)
    if gt.empty:
        raise SystemExit(f"no ground truth for {study_name!r} at {epochs} epochs, seed {seed}: run galaxy-synth correlate first")
    return attrs, data, store, gt, {t.number: t for t in study.get_trials(deepcopy=False)}
