"""The export stage's own settings: one ``galaxy-synth export`` (or :func:`galaxy_synth.api.export`) request, made
once where the request comes in; the full training it asks for is derived from them and the study's settings
(:meth:`ExportSettings.full_training`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthesis import StudySettings
from synthesis.full_training import FullTrainingSettings


@dataclass(frozen=True)
class ExportSettings:
    """Which study (its storage, name — None: the only one there — and results folder), how many models and
    ranked by what (``--top``, ``--by``, ``--knee``, the ``--calibration`` that scores them), the full training
    each packaged network gets (``--full-epochs``, ``--seed``, ``--device``), whether to show progress, and the
    ensemble (``--ensemble K``: greedy selection from the top K, up to ``--ensemble-members`` picks) and the cards'
    reliability flag (``--target-error``)."""

    storage_url: str
    study: str | None
    results_dir: Path
    top: int = 3
    by: str = "objective"
    knee: bool = False
    calibration: str | None = None
    full_epochs: int = 30
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    ensemble: int = 0  # candidates for models/ensemble/ (the top K fully trained); 0: no ensemble
    ensemble_members: int = 5  # greedy selection's picks at most (with replacement)
    target_error: float = 0.05  # every card's reliability flag: error rate of the galaxies it keeps, on validation

    def full_training(self, study: StudySettings) -> FullTrainingSettings:
        """The full training of the study (as reopened with this request's device and progress): one seed."""
        return FullTrainingSettings.of(study, self.full_epochs, self.seed)
