"""The full-training stage's own settings (for ``correlate``, ``export`` and the benchmarks), derived once from a
study's settings and the request's budget and seeds, as ``GrowthSettings.of`` derives progressive growth's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthesis import StudySettings


@dataclass(frozen=True)
class FullTrainingJob:
    """One full training: a trial's architecture and a seed (the budget is the stage's ``epochs``)."""

    trial: int
    seed: int


@dataclass(frozen=True)
class FullTrainingSettings:
    """Where a study is (a pool's processes reopen it there) and keeps its full trainings (the ground-truth table
    beside its trials, weights under ``weights_dir``); the precision it trained with, the device, and the request's
    ``--full-epochs`` and seeds (``--seed`` and ``--seeds``)."""

    study_name: str  # the name its full trainings are stored under
    storage_url: str
    results_dir: Path
    weights_dir: Path
    precision: str
    device: str  # a device name (auto, cpu, cuda:1…), resolved where a model is trained
    epochs: int
    seeds: tuple[int, ...]
    progress: bool

    @classmethod
    def of(cls, settings: StudySettings, epochs: int = 30, seed: int = 0, seeds: int = 1) -> FullTrainingSettings:
        """``seeds`` seeds from ``seed`` on: ``seed .. seed + seeds - 1``."""
        return cls(study_name=settings.study_name, storage_url=settings.storage_url, results_dir=settings.results_dir,
                   weights_dir=settings.study_dir / "ground_truth", precision=settings.precision,
                   device=settings.device, epochs=epochs, seeds=tuple(range(seed, seed + seeds)),
                   progress=settings.progress)

    def jobs(self, trials: list[int]) -> list[FullTrainingJob]:
        """Every trial with every seed, seed-major: a first pass over every architecture comes before any repeat."""
        return [FullTrainingJob(trial, seed) for seed in self.seeds for trial in trials]
