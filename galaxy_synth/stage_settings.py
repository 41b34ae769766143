"""The settings of the stages after the search, each derived once (as ``GrowthSettings.of`` does for growth):
``export`` packages a study's best trials (:class:`ExportSettings`), ``predict`` runs a packaged model over
images or a catalogue (:class:`PredictSettings`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from synthesis import StudySettings
from synthesis.training import FullTrainingSettings


@dataclass(frozen=True)
class ExportSettings:
    """What packaging a study's models reads: how many and ranked by what (``--top``, ``--by``, ``--knee``, the
    ``--calibration`` that scores them), where the folders go, what the model cards say of the data, and the
    full training each packaged network gets."""

    top: int
    by: str
    knee: bool
    calibration: str | None
    models_dir: Path
    dataset: str  # the data as a model card names it
    merge: tuple[str, ...]
    drop: tuple[str, ...]
    full_training: FullTrainingSettings

    @classmethod
    def of(cls, settings: StudySettings, top: int = 3, full_epochs: int = 30, seed: int = 0, by: str = "objective",
           knee: bool = False, calibration: str | None = None) -> ExportSettings:
        return cls(top=top, by=by, knee=knee, calibration=calibration, models_dir=settings.study_dir / "models",
                   dataset=settings.data or "embedded procedural galaxies", merge=tuple(settings.merge),
                   drop=tuple(settings.drop), full_training=FullTrainingSettings.of(settings, full_epochs, seed))


@dataclass(frozen=True)
class PredictSettings:
    """One ``predict`` run: the model folder, what goes in (image paths or a catalogue, its extra inputs and kept
    columns), how it runs (chunks, workers or Dask, precision, engine, test-time augmentation) and where it goes."""

    model: Path
    images: tuple[str, ...]
    catalogue: str | None
    extra_csv: str | None
    keep_columns: tuple[str, ...]
    out: Path
    tta: bool
    chunk_size: int
    workers: int | None
    dask: str | None
    precision: str
    engine: str
    overwrite: bool
    progress: bool
    embeddings: bool = False

    @classmethod
    def of(cls, args: argparse.Namespace) -> PredictSettings:
        """From ``galaxy-synth predict``'s parsed arguments (``--keep-columns`` is one comma-separated option)."""
        return cls(model=Path(args.model), images=tuple(args.images), catalogue=args.catalogue, extra_csv=args.extra,
                   keep_columns=tuple(c.strip() for c in args.keep_columns.split(",") if c.strip()), out=Path(args.out),
                   tta=args.tta, chunk_size=args.chunk_size, workers=args.workers, dask=args.dask,
                   precision=args.precision, engine=args.engine, overwrite=args.overwrite, progress=args.progress,
                   embeddings=getattr(args, "embeddings", False))
