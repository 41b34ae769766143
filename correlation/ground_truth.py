"""Ground truth: full training of selected trials, stored as soon as each one finishes.

Results live in a table of the study's own database (SQLAlchemy), keyed by study, trial,
epochs and seed, so an interrupted ``galaxy-synth correlate`` resumes where it stopped and a
repeated one reuses what exists. Full training uses the same loop as the trials
(:func:`synthesis.training.train_model`) with the trial's own optimiser settings, a cosine
schedule, all training images, and is scored on the test split that trials never saw.

:func:`stored_or_trained` is the one rule every command follows (correlate, export, the
benchmarks): a stored result is reused, and so are its weights where the caller needs the
model and the file is still there; otherwise the model is trained now and stored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sqlalchemy import DateTime, Float, Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from proxies.atomic_io import atomic_path
from synthesis.models import build_model
from synthesis.preparation import PreparedData
from synthesis.spec import ArchSpec, TrainConfig
from synthesis.training import evaluate, train_model

TARGETS = ("accuracy", "balanced_accuracy", "macro_f1")


class Base(DeclarativeBase):
    pass


class GroundTruthRecord(Base):
    """One full training of one trial's architecture."""

    __tablename__ = "galaxy_synth_ground_truth"
    __table_args__ = (UniqueConstraint("study_name", "trial_number", "epochs", "seed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(512), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    spec_hash: Mapped[str] = mapped_column(String(32))
    epochs: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float] = mapped_column(Float)
    balanced_accuracy: Mapped[float] = mapped_column(Float)
    macro_f1: Mapped[float] = mapped_column(Float)
    test_loss: Mapped[float] = mapped_column(Float)
    confusion_json: Mapped[str] = mapped_column(Text)
    wall_seconds: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(64))
    weights_path: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def as_row(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns}


class GroundTruthStore:
    """The ground-truth table in any SQLAlchemy database (the study's storage by default)."""

    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, **kwargs)
        Base.metadata.create_all(self.engine)

    def get(self, study: str, trial: int, epochs: int, seed: int) -> GroundTruthRecord | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalars(select(GroundTruthRecord).where(
                GroundTruthRecord.study_name == study, GroundTruthRecord.trial_number == trial,
                GroundTruthRecord.epochs == epochs, GroundTruthRecord.seed == seed)).first()

    def put(self, record: GroundTruthRecord) -> None:
        """Add, replacing a stored result with the same key (e.g. one whose weights file was deleted)."""
        with Session(self.engine, expire_on_commit=False) as s:
            old = s.scalars(select(GroundTruthRecord).where(
                GroundTruthRecord.study_name == record.study_name, GroundTruthRecord.trial_number == record.trial_number,
                GroundTruthRecord.epochs == record.epochs, GroundTruthRecord.seed == record.seed)).first()
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(record)
            s.commit()

    def table(self, study: str, epochs: int | None = None) -> pd.DataFrame:
        with Session(self.engine) as s:
            q = select(GroundTruthRecord).where(GroundTruthRecord.study_name == study)
            if epochs is not None:
                q = q.where(GroundTruthRecord.epochs == epochs)
            return pd.DataFrame([r.as_row() for r in s.scalars(q)])


def select_for_ground_truth(scores: pd.Series, k: int, top: int = 3) -> list[int]:
    """``top`` best by score plus ``k − top`` spread over the rest by quantile (deterministic).

    ``scores`` is indexed by trial number. The spread lets the fit see bad and mediocre models,
    the top few are what the user will export.
    """
    scores = scores.dropna().sort_values(ascending=False)
    if k >= len(scores):
        return [int(i) for i in scores.index]
    chosen = [int(i) for i in scores.index[:top]]
    rest = scores.iloc[top:]
    for bin_ in np.array_split(np.arange(len(rest)), k - len(chosen)):
        if len(bin_):
            chosen.append(int(rest.index[bin_[len(bin_) // 2]]))  # the bin's median trial
    return chosen


@dataclass
class FullTrainingResult:
    record: GroundTruthRecord
    model: torch.nn.Module


def full_train(study_name: str, trial_number: int, user_attrs: dict[str, Any], prep: PreparedData, epochs: int, seed: int,
               device: torch.device, weights_dir: Path, progress: bool = True, precision: str = "fp32") -> FullTrainingResult:
    """Train one trial's architecture with the full budget and score it on the test split."""
    spec = ArchSpec.from_dict(user_attrs["arch"])
    cfg = TrainConfig.from_dict(user_attrs["train_config"]).replace(schedule="cosine", warmup=0.0)
    train = prep.split("train", device)
    test = prep.split("test", device)
    torch.manual_seed(seed)
    model = build_model(spec)
    t0 = time.perf_counter()
    train_model(model, train, cfg, epochs, seed=seed, progress=progress, progress_desc=f"full training trial {trial_number}",
                precision=precision, **prep.training_kwargs())
    wall = time.perf_counter() - t0
    result = evaluate(model, test, prep.normalizer, prep.num_classes, precision=precision)
    weights = Path(weights_dir) / f"trial{trial_number}_e{epochs}_s{seed}.pt"
    with atomic_path(weights) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "arch": spec.to_dict(),
                    "normalizer": prep.normalizer.to_dict(), "extra_scaler": prep.extra_scaler.__dict__,
                    "class_names": list(prep.class_names)}, tmp)
    record = GroundTruthRecord(
        study_name=study_name, trial_number=trial_number, spec_hash=spec.spec_hash(), epochs=epochs, seed=seed,
        accuracy=result.accuracy, balanced_accuracy=result.balanced_accuracy, macro_f1=result.macro_f1,
        test_loss=result.loss, confusion_json=json.dumps(result.confusion), wall_seconds=wall, device=str(device),
        weights_path=str(weights), created=datetime.now(timezone.utc),
    )
    return FullTrainingResult(record, model)


def load_weights(record: GroundTruthRecord) -> torch.nn.Module:
    """The stored network of a full training (``weights_only``: loading never runs code)."""
    ckpt = torch.load(record.weights_path, map_location="cpu", weights_only=True)
    model = build_model(ArchSpec.from_dict(ckpt["arch"]))
    model.load_state_dict(ckpt["state_dict"])
    return model


def stored_or_trained(store: GroundTruthStore, study_name: str, trial_number: int, user_attrs: dict[str, Any],
                      prep: PreparedData, epochs: int, seed: int, device: torch.device, weights_dir: Path,
                      precision: str = "fp32", progress: bool = False,
                      need_model: bool = False) -> tuple[GroundTruthRecord, torch.nn.Module | None, bool]:
    """The full-training result for this key: ``(record, model or None, trained_now)``.

    Reused when stored (and, with ``need_model``, when its weights file still exists); otherwise
    trained now and stored at once, so a kill loses at most the model in training.
    """
    record = store.get(study_name, trial_number, epochs, seed)
    if record is not None and not need_model:
        return record, None, False
    if record is not None and Path(record.weights_path).is_file():
        return record, load_weights(record), False
    result = full_train(study_name, trial_number, user_attrs, prep, epochs, seed, device, weights_dir,
                        progress=progress, precision=precision)
    store.put(result.record)
    return result.record, result.model.cpu(), True
