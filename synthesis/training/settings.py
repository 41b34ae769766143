"""The full-training stage's own settings (for ``correlate`` and ``export``), derived once from a study's settings
and the request's budget and seed, as ``GrowthSettings.of`` derives progressive growth's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthesis import StudySettings


@dataclass(frozen=True)
class FullTrainingSettings:
    """Where a study's full trainings are stored (the ground-truth table beside its trials, weights under its
    folder), the precision the study trained with, and the request's ``--full-epochs`` and ``--seed``."""

    study_name: str
    storage_url: str
    results_dir: Path
    weights_dir: Path
    precision: str
    epochs: int
    seed: int
    progress: bool

    @classmethod
    def of(cls, settings: StudySettings, epochs: int = 30, seed: int = 0) -> FullTrainingSettings:
        return cls(study_name=settings.study_name, storage_url=settings.storage_url, results_dir=settings.results_dir,
                   weights_dir=settings.study_dir / "ground_truth", precision=settings.precision, epochs=epochs,
                   seed=seed, progress=settings.progress)
