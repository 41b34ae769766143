"""Full training of a trial's architecture, and the one rule every command follows: stored or train now.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthesis.data import PreparedData
from synthesis.full_training.settings import FullTrainingJob, FullTrainingSettings
from synthesis.full_training.store import GroundTruthRecord, GroundTruthStore
from synthesis.hardware import resolve_device
from synthesis.models import build_model
from synthesis.models import load_model, save_model
from synthesis.models import TrainConfig, model_spec_from_dict
from synthesis.training import evaluate, train_model


@dataclass
class FullTrainingResult:
    record: GroundTruthRecord
    model: torch.nn.Module


def check_full_epochs(full_epochs: int) -> None:
    """The one range check of a full-training budget (correlate, export): one line before any work."""
    from synthesis import GalaxySynthError

    if full_epochs < 1:
        raise GalaxySynthError("--full-epochs must be >= 1")


def full_training_config(user_attrs: dict[str, Any]) -> TrainConfig:
    """A trial's optimiser settings with the full-training schedule (cosine to zero, no warm-up)."""
    return TrainConfig.from_dict(user_attrs["train_config"]).replace(schedule="cosine", warmup=0.0)


def architecture_key(user_attrs: dict[str, Any], prep: PreparedData, precision: str) -> str:
    """What a full training depends on: spec, full-training configuration, data, split, precision.

    Two studies (two strategies, two trial schedules…) that meet the same architecture with the
    same optimiser settings on the same data share one full training.
    """
    body = {"spec": model_spec_from_dict(user_attrs["arch"]).to_dict(), "train": full_training_config(user_attrs).to_dict(),
            "data": prep.data.fingerprint, "train_split": _digest(prep.plan["train"]), "test_split": _digest(prep.plan["test"]),
            "precision": precision}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def _digest(indices: list[int]) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def full_train(settings: FullTrainingSettings, job: FullTrainingJob, user_attrs: dict[str, Any],
               prep: PreparedData) -> FullTrainingResult:
    """Train one trial's architecture with the full budget and score it on the test split."""
    spec = model_spec_from_dict(user_attrs["arch"])
    cfg = full_training_config(user_attrs)
    device = resolve_device(settings.device)
    epochs, seed, precision = settings.epochs, job.seed, settings.precision
    train = prep.split("train", device)
    test = prep.split("test", device)
    torch.manual_seed(seed)
    model = build_model(spec)
    t0 = time.perf_counter()
    train_model(model, train, cfg, epochs, seed=seed, progress=settings.progress,
                progress_desc=f"full training trial {job.trial}", precision=precision, **prep.training_kwargs())
    wall = time.perf_counter() - t0
    result = evaluate(model, test, prep.normalizer, prep.num_classes, precision=precision)
    weights = Path(settings.weights_dir) / f"trial{job.trial}_e{epochs}_s{seed}.pt"
    save_model(weights, model, spec, prep.preprocessing, study=settings.study_name, trial=job.trial, epochs=epochs,
               seed=seed)
    record = GroundTruthRecord(
        study_name=settings.study_name, trial_number=job.trial, spec_hash=spec.spec_hash(), epochs=epochs, seed=seed,
        accuracy=result.accuracy, balanced_accuracy=result.balanced_accuracy, macro_f1=result.macro_f1,
        test_loss=result.loss, confusion_json=json.dumps(result.confusion), wall_seconds=wall, device=str(device),
        weights_path=str(weights), created=datetime.now(timezone.utc),
        arch_key=architecture_key(user_attrs, prep, precision), fraction_mae=result.fraction_mae,
    )
    return FullTrainingResult(record, model)


def load_weights(record: GroundTruthRecord) -> torch.nn.Module:
    """The stored network of a full training (``weights_only``: loading never runs code)."""
    return load_model(record.weights_path)[0]


def stored_or_trained(store: GroundTruthStore, settings: FullTrainingSettings, job: FullTrainingJob,
                      user_attrs: dict[str, Any], prep: PreparedData,
                      need_model: bool = False) -> tuple[GroundTruthRecord, torch.nn.Module | None, bool]:
    """The full-training result of this job under ``settings`` (study, budget, precision): ``(record, model or
    None, trained_now)``.

    Reused when stored for this study and trial, or for the same architecture, configuration, data
    and seed in another study of the database (then recorded for this trial too); with
    ``need_model``, only where its weights file still exists. Otherwise trained now and stored at
    once, so a kill loses at most the model in training.
    """
    name, epochs = settings.study_name, settings.epochs
    record = store.get(name, job.trial, epochs, job.seed)
    if record is None:
        twin = store.same_training(architecture_key(user_attrs, prep, settings.precision), epochs, job.seed)
        if twin is not None and (not need_model or Path(twin.weights_path).is_file()):
            record = GroundTruthRecord(**{**{c: v for c, v in twin.as_row().items() if c != "id"},
                                          "study_name": name, "trial_number": job.trial})
            store.put(record)
    if record is not None and not need_model:
        return record, None, False
    if record is not None and Path(record.weights_path).is_file():
        return record, load_weights(record), False
    result = full_train(settings, job, user_attrs, prep)
    store.put(result.record)
    return result.record, result.model.cpu(), True


def fill_arch_keys(store: GroundTruthStore, study_name: str, trials: dict[int, Any], prep: PreparedData,
                   precision: str) -> None:
    """Give rows stored before architecture keys existed their key, so other studies can reuse them."""
    for r in store.records(study_name):
        if r.arch_key is None and r.trial_number in trials:
            r.arch_key = architecture_key(trials[r.trial_number].user_attrs, prep, precision)
            store.put(r)
