"""The Python API: the same functions the ``galaxy-synth`` command line calls, for notebooks and scripts.

    from galaxy_synth import api
    from synthesis.settings import StudySettings

    study = api.synth(StudySettings(data="../shared/data/gz1_dev", merge=["spiral_cw,spiral_acw=spiral"],
                                    drop=["dont_know"], trials=20))
    print(api.rank(study.study_name).head())               # every completed trial, best first
    report = api.calibrate(study.study_name, ground_truth=24, seeds=2)
    models = api.export(study.study_name, top=3)          # fully trained, packaged
    model = api.load_model(models[0].folder)
    print(api.predict(model, ["my_galaxies/"], tta=True))

Every function takes the results folder (default ``results``) and an optional storage URL, as the
CLI does; user errors raise :class:`synthesis.errors.GalaxySynthError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import pandas as pd

from synthesis import GalaxySynthError
from synthesis.search import existing_storage_url
from synthesis import StudySettings

__all__ = ["StudySettings", "SynthResult", "synth", "rank", "calibrate", "calibrate_table", "calibrate_pooled", "export", "load_model",
           "predict", "report", "GalaxySynthError"]


@dataclass
class SynthResult:
    """What :func:`synth` did: the Optuna study, the settings it ran with (no "auto" left), the files it wrote."""

    study: optuna.Study
    settings: StudySettings
    written: list[Path]
    growth: Any = None  # progressive growth: the steps and why it stopped

    @property
    def study_name(self) -> str:
        return self.study.study_name


def synth(settings: StudySettings, sampler: optuna.samplers.BaseSampler | None = None,
          pruner: optuna.pruners.BasePruner | None = None, on_ready: Callable[[Any], None] | None = None,
          stop_when: Callable[[], bool] | None = None) -> SynthResult:
    """Run or resume a study (``settings.strategy`` "tpe", "progressive" or "calibrating") and write its tables and plots.

    :func:`synthesis.search.runner.run_study` runs it, as it runs every study: as ``settings.workers``
    processes on its storage (default: the execution plan of
    :func:`synthesis.hardware.cores.execution_plan`, one single-threaded process per allotted core on
    a CPU), or in this process where a sampler, pruner or ``stop_when`` object is given (objects do
    not travel to other processes) and for progressive growth (one sequence of steps).
    ``on_ready(opened_study)`` is called once the study is checked and open, before any training;
    ``opened_study.execution`` says how it will run. ``stop_when()`` before each trial: True stops
    the run early.
    """
    from synthesis.search import run_study, strategy_for

    run = run_study(settings, strategy_for(settings, sampler, pruner), on_ready=on_ready, stop_when=stop_when,
                    write_outputs=True)
    return SynthResult(run.study, run.settings, run.written, run.outcome)


def rank(study: str | None = None, results: str | Path = "results", storage: str | None = None,
         calibration: str | None = None, by: str = "objective") -> pd.DataFrame:
    """Every trial with every metric, rescored with the current calibration, best first.

    ``table.attrs`` says which study and calibration: ``study``, ``calibration`` (name), ``calibration_hash``,
    ``calibration_file``; ``scorer``: a self-calibrating study's current scorer version in one line (else None).
    """
    from synthesis.search import metrics_table
    from synthesis.search import load_existing_study
    from synthesis.search import find_calibration

    url = existing_storage_url(storage, Path(results))
    proxy, source = find_calibration(calibration, Path(results))
    loaded = load_existing_study(study, url)
    from synthesis.search import score_images
    from synthesis import STUDY_ATTR

    table = metrics_table(loaded, proxy, by=by)
    ranked_by = table["ranked_by"].iloc[0] if len(table) and "ranked_by" in table else by
    from synthesis.search import current_scorer_line

    table.attrs.update(study=loaded.study_name, calibration=proxy.name, calibration_hash=proxy.calibration_hash,
                       calibration_file=str(source),
                       score_images=score_images(loaded.user_attrs.get(STUDY_ATTR, {}), ranked_by),
                       scorer=current_scorer_line(loaded))  # a self-calibrating study's scorer version (else None)
    return table


def calibrate(study: str | None = None, results: str | Path = "results", storage: str | None = None, *,
              ground_truth: int = 24, top: int = 3, full_epochs: int = 30, target: str = "accuracy", seeds: int = 1,
              seed: int = 0, device: str = "auto", folds: int = 5, repeats: int = 10,
              progress: bool = True, save_ground_truth: str | Path | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Full-train ``ground_truth`` trials (resumable), fit the composite proxy, report out-of-fold.

    ``save_ground_truth``: also merge every full-training result of the study into this CSV (e.g.
    a file kept in version control, so the measurements outlive the results folder).
    """
    from correlation import calibrate_study

    url = existing_storage_url(storage, Path(results), "--storage / --table")
    return calibrate_study(url, study, Path(results), ground_truth, top, full_epochs, target, seed, device, folds,
                           repeats, progress=progress, seeds=seeds,
                           save_ground_truth=Path(save_ground_truth) if save_ground_truth else None)


def calibrate_pooled(tables: Sequence[str | Path], target: str = "accuracy", results: str | Path = "results", *,
                     seeds: int = 2, folds: int = 5, repeats: int = 10, seed: int = 0,
                     progress: bool = True) -> tuple[dict[str, Any], list[Path]]:
    """Fit the composite on several studies' ground-truth CSVs, cross-validated by study (transfer)."""
    from correlation import calibrate_tables

    return calibrate_tables([Path(t) for t in tables], target, Path(results), seeds, folds, repeats, seed, progress)


def calibrate_table(table: str | Path, target: str, results: str | Path = "results", features: Sequence[str] | None = None,
                    folds: int = 5, repeats: int = 10, seed: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """Fit and report the composite on any CSV of metrics with a target column."""
    from correlation import calibrate_table as _calibrate_table

    return _calibrate_table(Path(table), target, Path(results), list(features) if features else None, folds, repeats, seed)


def export(study: str | None = None, results: str | Path = "results", storage: str | None = None, *, top: int = 3,
           full_epochs: int = 30, seed: int = 0, device: str = "auto", calibration: str | None = None,
           progress: bool = True, by: str = "objective", knee: bool = False, ensemble: int = 0,
           ensemble_members: int = 5, target_error: float = 0.05) -> list[Any]:
    """Fully train (or reuse) and package the ``top`` best trials; returns one ``ExportedModel`` each.

    ``ensemble`` K > 0: also ``models/ensemble/``, greedy ensemble selection from the top K (up to
    ``ensemble_members`` picks), last in the list, rank 0. ``target_error``: every card's reliability threshold.

    ``by``: "objective" (what the study optimised), "proxy", "val_acc" or "balanced_acc". ``knee``: also
    the front's knee (the cheapest trial within one binomial SE of the best), as ``models/knee/``.
    """
    from galaxy_synth.export import ExportSettings, export_top

    return export_top(ExportSettings(existing_storage_url(storage, Path(results)), study, Path(results), top=top, by=by,
                                     knee=knee, calibration=calibration, full_epochs=full_epochs, seed=seed,
                                     device=device, progress=progress, ensemble=ensemble,
                                     ensemble_members=ensemble_members, target_error=target_error))


def load_model(folder: str | Path) -> Any:
    """An exported model folder (``models/rank1``), checked and ready for :func:`predict`."""
    from galaxy_synth.predict import load_model_dir

    return load_model_dir(folder)


def predict(model: Any, images: Sequence[str | Path], extra_csv: str | Path | None = None, tta: bool = False) -> pd.DataFrame:
    """Class probabilities for image files and/or folders; ``model`` from :func:`load_model` or a folder path."""
    from galaxy_synth.predict import load_model_dir, predict_files

    loaded = load_model_dir(model) if isinstance(model, (str, Path)) else model
    return predict_files(loaded, images, extra_csv, tta)


def classify(model: str | Path, images: Sequence[str | Path] = (), catalogue: str | Path | None = None,
             out: str | Path = "predictions.csv", extra_csv: str | Path | None = None, keep_columns: Sequence[str] = (),
             tta: bool = False, chunk_size: int = 1024, workers: int | None = None, dask: str | None = None,
             overwrite: bool = False, progress: bool = True, precision: str = "fp32", engine: str = "torch",
             embeddings: bool = False, target_error: float | None = None) -> Any:
    """Stream images or a catalogue through an exported model into ``out`` (resumable; see :mod:`galaxy_synth.predict.catalogue`),
    as ``galaxy-synth predict`` does (:func:`galaxy_synth.predict.command.run_predict`).

    ``out``: a .csv, .parquet or .fits (:mod:`galaxy_synth.predict.output_formats`). ``precision`` (fp32, bf16, auto)
    and ``engine`` (torch, onnx, auto): :func:`galaxy_synth.predict.catalogue.inference_settings`. ``embeddings``:
    also each galaxy's pooled features (torch engine; :mod:`galaxy_synth.predict.embeddings`). ``target_error``: the
    ``reliable`` column's target error rate (default: the card's threshold; :mod:`galaxy_synth.predict.uncertainty`)."""
    from galaxy_synth.predict import PredictSettings, run_predict

    return run_predict(PredictSettings(model=Path(model), images=tuple(images), catalogue=catalogue, extra_csv=extra_csv,
                                       keep_columns=tuple(keep_columns), out=Path(out), tta=tta, chunk_size=chunk_size,
                                       workers=workers, dask=dask, precision=precision, engine=engine,
                                       overwrite=overwrite, progress=progress, embeddings=embeddings,
                                       target_error=target_error))


def read_predictions(out: str | Path) -> pd.DataFrame:
    """A predict output back as one table (a CSV, a Parquet folder of parts, or a FITS table)."""
    from galaxy_synth.predict import read_output

    return read_output(out)


def report(study: str | None = None, results: str | Path = "results", storage: str | None = None) -> Path:
    """The static HTML report of a study; returns the page's path."""
    from galaxy_synth.report import write_study_report

    return write_study_report(existing_storage_url(storage, Path(results)), study, Path(results))
