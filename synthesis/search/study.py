"""A study: its frozen experiment (settings, data fingerprint, split, calibration) in Optuna's storage.

Everything a resumed or parallel run must agree on is written into the study's user attrs when
the study is created and checked on every later run, so ``make synth`` after a crash continues
the *same* experiment. :func:`prepare_study` opens one in named steps, each given only what it
reads: check the settings, resolve the device, peek at the storage, choose the precision (a
resumed study keeps its own), fill the "auto" settings, choose the scorer (objective and the
calibration's domain), load the data, then create or check the study. Only that last step writes,
so every check that can fail comes first. :func:`reopen_study` gives the later commands
(``correlate``, ``export``, ``report``) the study, its data and its settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from proxies import CompositeProxy
from synthesis import objective_info
from synthesis.data import GalaxyImages, open_cached
from synthesis.data import PreparedData, data_plan, load_study_data
from synthesis.data import DataSettings
from synthesis import GalaxySynthError, StudyMismatchError
from synthesis.hardware import ExecutionPlan
from synthesis.hardware import PrecisionChoice, resolve_device, resolve_precision
from synthesis.search.samplers import make_pruner, make_sampler
from synthesis.search.settings import SearchSettings
from synthesis.search.space import space_for
from synthesis.search.storage import (
    check_storage,
    find_study,
    journal_path,
    load_existing_study,
    masked,
    open_storage,
)
from synthesis import STUDY_ATTR, StudySettings, check_ranges


def shipped_calibration(name: str = "default.json") -> Path:
    """A calibration shipped inside the package (works from a wheel, see proxies/calibrations)."""
    from importlib.resources import as_file, files

    resource = files("proxies").joinpath("calibrations", name)
    with as_file(resource) as path:  # a real file for packages installed as files (wheels, editable)
        return Path(path)


def find_calibration(path: str | None, results: Path) -> tuple[CompositeProxy, Path]:
    """``path`` if given, else ``RESULTS/proxy_weights.json`` if one was promoted, else the shipped default."""
    candidates = [Path(path)] if path else [Path(results) / "proxy_weights.json", shipped_calibration()]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return CompositeProxy.load(candidate), candidate
            except ValueError as exc:
                raise GalaxySynthError(str(exc)) from None
    raise GalaxySynthError(f"proxy calibration not found: {candidates[0]}" + (
        "" if path else f" (nor the shipped default {candidates[-1]}: is the package installed whole?)"))


@dataclass
class OpenedStudy:
    """A study with everything a command needs to work on it."""

    study: optuna.Study
    attrs: dict[str, Any]
    data: GalaxyImages
    settings: StudySettings  # resolved: no "auto" left
    device: torch.device
    precision_reason: str = ""
    objective_note: str = ""  # why the objective is not the calibrated composite, when it is not
    execution: ExecutionPlan | None = None  # how the run spends its cores (decided by synthesis.search.runner.run_study)

    @property
    def plan(self) -> dict[str, list[int]]:
        return self.attrs["plan"]

    def prepared(self) -> PreparedData:
        """Normaliser and scaler as the study stored them (computed from the train split for old studies)."""
        return PreparedData.from_plan(self.data, self.plan, self.attrs.get("preprocessing"))


def study_attrs(storage: optuna.storages.BaseStorage, found: Any, wait_seconds: float = 20.0) -> dict[str, Any] | None:
    """A study's galaxy-synth attrs. A study with no trial and no attrs yet may be one another process has just
    created (a job array's tasks start together): wait for its attrs a little before calling it foreign."""
    attrs = found.user_attrs.get(STUDY_ATTR)
    deadline = time.monotonic() + wait_seconds
    while attrs is None and storage.get_n_trials(found._study_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        attrs = find_study(storage, found.study_name).user_attrs.get(STUDY_ATTR)
    return attrs


def prepare_study(settings: StudySettings, sampler: optuna.samplers.BaseSampler | None = None,
                  pruner: optuna.pruners.BasePruner | None = None) -> OpenedStudy:
    """Open the study these settings name, creating it if it is new; nothing is written before every check passed.

    ``sampler`` / ``pruner``: any Optuna sampler or pruner instead of the ones the settings name.
    """
    check_ranges(settings)
    device = resolve_device(settings.device)
    stored = peek_attrs(settings.storage_url, settings.study_name)
    precision = choose_precision(settings.precision, device, stored, settings.results_dir / "cache")
    resolved = settings.replace(precision=precision.name).resolve(device.type, stored["settings"] if stored else None)
    objective, objective_note = choose_scorer(resolved.objective, stored is None, resolved.calibration,
                                              resolved.results_dir, resolved.domain_facts())
    resolved = resolved.replace(objective=objective)
    data = load_study_data(DataSettings.of(resolved))  # validation errors surface here, before any storage write
    try:
        study, attrs = open_study(resolved, data, sampler=sampler, pruner=pruner, objective_note=objective_note)
    except StudyMismatchError:
        if stored is not None:
            raise
        # Another worker created the study while this one measured bf16 and loaded data: what this process resolved
        # from "auto" (precision, objective) may differ from what that worker froze; check again against the study.
        return prepare_study(settings, sampler, pruner)
    return OpenedStudy(study, attrs, data, resolved, device, precision.reason, objective_note)


def peek_attrs(storage_url: str, study_name: str) -> dict[str, Any] | None:
    """The galaxy-synth attrs of the study ``study_name`` in ``storage_url``, read without creating anything."""
    check_storage(storage_url)  # one line for a storage mistake, before any data is loaded
    if storage_url.startswith("sqlite:///") and not Path(storage_url[len("sqlite:///"):]).is_file():
        return None
    journal = journal_path(storage_url)
    if journal is not None and not journal.is_file():
        return None
    storage = open_storage(storage_url)
    summary = find_study(storage, study_name)
    if summary is None:
        return None
    attrs = study_attrs(storage, summary)
    if attrs is None:
        raise StudyMismatchError(f"study {study_name!r} in {masked(storage_url)} was not made by galaxy-synth; choose another --study")
    return attrs


def choose_precision(requested: str, device: torch.device, stored: dict[str, Any] | None, cache_dir: Path) -> PrecisionChoice:
    """A resumed study keeps its precision under ``auto``; anything impossible here is one line."""
    stored_precision = StudySettings.stored_frozen(stored["settings"])["precision"] if stored else None
    if requested == "auto" and stored_precision is not None:
        resolve_precision(stored_precision, device)  # raises if this device cannot run it
        return PrecisionChoice(stored_precision, "the study's own")
    return resolve_precision(requested, device, cache_dir)


# What a new study optimises when its trial settings lie outside the calibration's domain: the
# strongest single signal on every data set measured, which needs no calibration (BENCHMARKS §13).
OUT_OF_DOMAIN_OBJECTIVE = "train_acc"


def choose_scorer(asked: str | None, new_study: bool, calibration: str | None, results: Path,
                  domain: dict[str, Any]) -> tuple[str, str]:
    """The objective trials are scored by and, where it is not simply the calibrated composite, why.

    An uncalibrated objective, or a resumed study's, stands as asked (``resolve`` gave a resumed study its
    own); a new study's calibrated or unset one is checked against the calibration's ``domain``.
    """
    if asked is not None and not (new_study and objective_info(asked).calibrated):
        return asked, ""
    proxy, source = find_calibration(calibration, results)
    return choose_objective(asked, proxy, source, domain)


def choose_objective(asked: str | None, proxy: CompositeProxy, source: Path, domain: dict[str, Any]) -> tuple[str, str]:
    """A new study's objective given its calibration ``proxy`` (read from ``source``) and, where it is not simply
    the calibrated composite, why.

    Another data set alone keeps the composite (measured: the gz1 calibration ranked DECaLS rings
    better than anything fitted on them, §13d), with a note. Trial settings the calibration never
    saw (image size, epochs, schedule, FLOP range…) change what its metrics mean: the default then
    falls back to :data:`OUT_OF_DOMAIN_OBJECTIVE`; an explicit ``--objective composite`` is kept,
    with a warning.
    """
    from proxies import differences

    found = differences(proxy.provenance.get("domain", {}), domain)
    if not found["data"] and not found["settings"]:
        return asked or "composite", ""
    where = f"calibration {proxy.name!r} ({source})"
    if not found["settings"]:
        return asked or "composite", (f"note: {where} was fitted on other data ({found['data'][0]}); on another survey "
                                      f"it still ranked full training better than validation accuracy (docs/BENCHMARKS.md "
                                      f"§13d) — check it on yours with 'galaxy-synth correlate'")
    why = "; ".join(found["data"] + found["settings"])
    if asked is None:
        return OUT_OF_DOMAIN_OBJECTIVE, (f"{where} was not fitted on trials like these: {why}. Optimising "
                                         f"{OUT_OF_DOMAIN_OBJECTIVE} instead (the strongest uncalibrated signal, §13); "
                                         f"calibrate with 'galaxy-synth correlate', or pass --objective composite to use it anyway")
    return asked, f"warning: {where} was not fitted on trials like these: {why}; its scores are extrapolations here"


def open_study(settings: StudySettings, data: GalaxyImages, storage: optuna.storages.BaseStorage | None = None,
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None, objective_note: str = "") -> tuple[optuna.Study, dict[str, Any]]:
    """Create the study, or load it and check that it was made with the same settings (``settings`` resolved).

    A new study freezes its proxy calibration into its attrs; a resumed one keeps that one, so
    the objective the sampler sees never changes meaning mid-study (re-ranking is ``galaxy-synth rank``).
    """
    storage = storage or open_storage(settings.storage_url, settings.heartbeat_interval, settings.grace_period)
    name = settings.study_name
    found = find_study(storage, name)
    attrs = existing_attrs(storage, found, settings, data) if found is not None else None
    search = SearchSettings.of(settings)
    sampler, sampler_info = study_sampler(search, storage.get_n_trials(found._study_id) if found is not None else 0, sampler)
    pruner, pruner_name = study_pruner(search, pruner)
    directions = objective_info(search.objective).directions
    calibration = frozen_calibration(search.objective, settings.calibration, settings.results_dir) if attrs is None else None
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler, pruner=pruner,
                                load_if_exists=True)
    if attrs is not None and data.cache_file and not attrs.get("cache_file"):  # a study from before the rows file
        attrs = {**attrs, "cache_file": Path(data.cache_file).name}
        study.set_user_attr(STUDY_ATTR, attrs)
    if attrs is None:
        attrs = new_study_attrs(settings, data, sampler_info, pruner_name, objective_note, directions, calibration)
        study.set_user_attr(STUDY_ATTR, attrs)
    return study, attrs


def existing_attrs(storage: optuna.storages.BaseStorage, found: Any, settings: StudySettings,
                   data: GalaxyImages) -> dict[str, Any]:
    """The attrs of a study found in the storage, checked to be the same experiment as ``settings`` on ``data``."""
    attrs = study_attrs(storage, found)
    if attrs is None:
        raise StudyMismatchError(f"study {settings.study_name!r} in {masked(settings.storage_url)} was not made by "
                                 f"galaxy-synth; choose another --study")
    check_same_experiment(attrs, settings, data)
    return attrs


def study_sampler(search: SearchSettings, n_existing: int,
                  given: optuna.samplers.BaseSampler | None) -> tuple[optuna.samplers.BaseSampler, dict[str, Any]]:
    """The sampler a library user gave, else the one the settings name (seeded for this run and worker)."""
    if given is not None:
        return given, {"name": type(given).__name__, "given": True}
    return make_sampler(search.seed, n_existing, search.worker_id, search.sampler)


def study_pruner(search: SearchSettings, given: optuna.pruners.BasePruner | None) -> tuple[optuna.pruners.BasePruner, str]:
    """The pruner a library user gave, else the one the settings name (promotion with --fidelities)."""
    if given is not None:
        return given, type(given).__name__
    return make_pruner(search.pruner, search.epochs, search.objective, list(search.rungs) if search.rungs else None)


def frozen_calibration(objective: str | None, calibration: str | None, results: Path) -> dict[str, Any] | None:
    """What a new study with a calibrated objective freezes: the calibration it scores trials with, whole."""
    if not objective_info(objective).calibrated:
        return None
    return find_calibration(calibration, results)[0].to_dict()


def new_study_attrs(settings: StudySettings, data: GalaxyImages, sampler_info: dict[str, Any], pruner_name: str,
                    objective_note: str, directions: list[str], calibration: dict[str, Any] | None) -> dict[str, Any]:
    """Everything a new study freezes: the experiment every later run and worker checks itself against."""
    data_settings = DataSettings.of(settings)
    plan = data_plan(data, data_settings)
    prepared = PreparedData.from_plan(data, plan, band_mapping=data_settings.band_mapping)
    space = space_for(settings.equivariant, prepared.mirror_pairs, prepared.allow_flips)  # what its trials sample
    return {
        "settings": settings.frozen(), "fingerprint": data.fingerprint, "class_names": list(data.class_names),
        "extra_names": list(data.extra_names), "image_size": data.size, "crop": data.crop, "n_images": len(data),
        "cache_file": Path(data.cache_file).name if data.cache_file else None, "plan": plan,
        "preprocessing": prepared.statistics(),
        "sampler": sampler_info, "pruner": pruner_name, "objective": settings.objective, "objective_note": objective_note,
        "directions": directions, "calibration": calibration, "search_space": space.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__, "optuna": optuna.__version__,
    }


def check_same_experiment(attrs: dict[str, Any], settings: StudySettings, data: GalaxyImages) -> None:
    diffs = settings.differences(attrs["settings"])
    if diffs:
        raise StudyMismatchError(f"study {settings.study_name!r} was created with other settings ({'; '.join(diffs)}); "
                                 f"use the same options to resume it, or a new --study name")
    if attrs["fingerprint"] != data.fingerprint:
        raise StudyMismatchError(f"study {settings.study_name!r} was created on different data (fingerprint "
                                 f"{attrs['fingerprint']} vs {data.fingerprint}); use a new --study name")


def reopen_study(storage: str, study_name: str | None, results: Path, progress: bool = True,
                 device: str = "auto") -> OpenedStudy:
    """An existing study, its attrs, settings and data, checked to be the data it was made on."""
    study = load_existing_study(study_name, storage)
    attrs = study.user_attrs.get(STUDY_ATTR)
    if attrs is None:
        raise GalaxySynthError(f"study {study.study_name!r} was not made by galaxy-synth")
    settings = StudySettings.from_attrs(attrs, results=str(results), storage=storage, study=study.study_name,
                                        progress=progress, device=device)
    dev = resolve_device(device)
    resolve_precision(settings.precision, dev)  # a bf16 study on a machine without bf16: one line
    # Straight to the memory-mapped cache the study was made from; only without it is the source read again.
    cached = attrs.get("cache_file") and open_cached(settings.results_dir / "cache" / attrs["cache_file"], attrs["fingerprint"])
    data = cached or load_study_data(DataSettings.of(settings))
    check_same_experiment(attrs, settings, data)
    return OpenedStudy(study, attrs, data, settings, dev)
