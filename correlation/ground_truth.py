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

import hashlib
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
from synthesis.settings import dataset_name
from synthesis.spec import TrainConfig, model_spec_from_dict
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
    # What was trained, whatever study asked (see architecture_key): lets another study reuse it.
    arch_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    def as_row(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns}


class GroundTruthStore:
    """Where full-training results live, beside the study, for every kind of storage (one interface).

    :func:`open_ground_truth` picks the backend: a table of the study's own database for RDB
    storages (:class:`SqlGroundTruthStore`), a JSON-lines file beside the journal for journal
    storages (:class:`JournalGroundTruthStore`). Either way a result is written the moment its
    training ends and read back by its key (study, trial, epochs, seed), so "stored or train now"
    (:func:`stored_or_trained`) is one rule whatever the storage.
    """

    def records(self, study: str | None = None) -> list[GroundTruthRecord]:
        raise NotImplementedError

    def put(self, record: GroundTruthRecord) -> None:
        """Add, replacing a stored result with the same key (e.g. one whose weights file was deleted)."""
        raise NotImplementedError

    def get(self, study: str, trial: int, epochs: int, seed: int) -> GroundTruthRecord | None:
        return next((r for r in self.records(study) if (r.trial_number, r.epochs, r.seed) == (trial, epochs, seed)), None)

    def same_training(self, arch_key: str, epochs: int, seed: int) -> GroundTruthRecord | None:
        """A stored full training of exactly this architecture, configuration, data and seed, from any study."""
        return next((r for r in self.records() if (r.arch_key, r.epochs, r.seed) == (arch_key, epochs, seed)), None)

    def table(self, study: str | None, epochs: int | None = None) -> pd.DataFrame:
        """Stored results of one study (``None``: every study in the storage)."""
        return pd.DataFrame([r.as_row() for r in self.records(study) if epochs is None or r.epochs == epochs])


class SqlGroundTruthStore(GroundTruthStore):
    """The ground-truth table in any SQLAlchemy database (the study's storage)."""

    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, **kwargs)
        Base.metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Tables made by an older galaxy-synth lack the newer nullable columns: add them (their rows keep NULL)."""
        from sqlalchemy import inspect, text

        present = {c["name"] for c in inspect(self.engine).get_columns(GroundTruthRecord.__tablename__)}
        with self.engine.begin() as conn:
            for column in GroundTruthRecord.__table__.columns:
                if column.name not in present and column.nullable:
                    conn.execute(text(f"ALTER TABLE {GroundTruthRecord.__tablename__} ADD COLUMN {column.name} "
                                      f"{column.type.compile(self.engine.dialect)}"))

    def records(self, study: str | None = None) -> list[GroundTruthRecord]:
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(GroundTruthRecord)
            if study is not None:
                q = q.where(GroundTruthRecord.study_name == study)
            return list(s.scalars(q))

    def get(self, study: str, trial: int, epochs: int, seed: int) -> GroundTruthRecord | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalars(select(GroundTruthRecord).where(
                GroundTruthRecord.study_name == study, GroundTruthRecord.trial_number == trial,
                GroundTruthRecord.epochs == epochs, GroundTruthRecord.seed == seed)).first()

    def same_training(self, arch_key: str, epochs: int, seed: int) -> GroundTruthRecord | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalars(select(GroundTruthRecord).where(
                GroundTruthRecord.arch_key == arch_key, GroundTruthRecord.epochs == epochs,
                GroundTruthRecord.seed == seed)).first()

    def put(self, record: GroundTruthRecord) -> None:
        record = GroundTruthRecord(**{k: v for k, v in record.as_row().items() if k != "id"})  # a fresh, unbound copy
        with Session(self.engine, expire_on_commit=False) as s:
            old = s.scalars(select(GroundTruthRecord).where(
                GroundTruthRecord.study_name == record.study_name, GroundTruthRecord.trial_number == record.trial_number,
                GroundTruthRecord.epochs == record.epochs, GroundTruthRecord.seed == record.seed)).first()
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(record)
            s.commit()


class JournalGroundTruthStore(GroundTruthStore):
    """Ground truth as JSON lines in a file beside an Optuna journal (``<journal>.ground-truth.jsonl``).

    Appends go under Optuna's own journal file lock (safe on NFS, like the journal itself); the last
    line of a key wins, so a replaced result is a new line.
    """

    def __init__(self, path: Path) -> None:
        from optuna.storages.journal import JournalFileSymlinkLock

        self.path = Path(path)
        self.lock = JournalFileSymlinkLock(str(self.path))
        self.path.touch(exist_ok=True)

    def records(self, study: str | None = None) -> list[GroundTruthRecord]:
        latest: dict[tuple, dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                latest[(row["study_name"], row["trial_number"], row["epochs"], row["seed"])] = row
        return [GroundTruthRecord(**{**row, "created": datetime.fromisoformat(row["created"])})
                for row in latest.values() if study is None or row["study_name"] == study]

    def put(self, record: GroundTruthRecord) -> None:
        row = {k: v for k, v in record.as_row().items() if k != "id"}
        row["created"] = row["created"].isoformat() if isinstance(row["created"], datetime) else str(row["created"])
        line = json.dumps(row, sort_keys=True) + "\n"
        self.lock.acquire()
        try:
            with open(self.path, "a") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            self.lock.release()


def open_ground_truth(storage_url: str) -> GroundTruthStore:
    """The ground-truth store of a study storage: beside the journal file, or a table in the database."""
    from synthesis.storage import journal_path

    journal = journal_path(storage_url)
    if journal is not None:
        return JournalGroundTruthStore(journal.with_name(journal.name + ".ground-truth.jsonl"))
    return SqlGroundTruthStore(storage_url)


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


def full_train(study_name: str, trial_number: int, user_attrs: dict[str, Any], prep: PreparedData, epochs: int, seed: int,
               device: torch.device, weights_dir: Path, progress: bool = True, precision: str = "fp32") -> FullTrainingResult:
    """Train one trial's architecture with the full budget and score it on the test split."""
    spec = model_spec_from_dict(user_attrs["arch"])
    cfg = full_training_config(user_attrs)
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
        arch_key=architecture_key(user_attrs, prep, precision),
    )
    return FullTrainingResult(record, model)


def load_weights(record: GroundTruthRecord) -> torch.nn.Module:
    """The stored network of a full training (``weights_only``: loading never runs code)."""
    ckpt = torch.load(record.weights_path, map_location="cpu", weights_only=True)
    model = build_model(model_spec_from_dict(ckpt["arch"]))
    model.load_state_dict(ckpt["state_dict"])
    return model


def stored_or_trained(store: GroundTruthStore, study_name: str, trial_number: int, user_attrs: dict[str, Any],
                      prep: PreparedData, epochs: int, seed: int, device: torch.device, weights_dir: Path,
                      precision: str = "fp32", progress: bool = False,
                      need_model: bool = False) -> tuple[GroundTruthRecord, torch.nn.Module | None, bool]:
    """The full-training result for this key: ``(record, model or None, trained_now)``.

    Reused when stored for this study and trial, or for the same architecture, configuration, data
    and seed in another study of the database (then recorded for this trial too); with
    ``need_model``, only where its weights file still exists. Otherwise trained now and stored at
    once, so a kill loses at most the model in training.
    """
    record = store.get(study_name, trial_number, epochs, seed)
    if record is None:
        twin = store.same_training(architecture_key(user_attrs, prep, precision), epochs, seed)
        if twin is not None and (not need_model or Path(twin.weights_path).is_file()):
            record = GroundTruthRecord(**{**{c: v for c, v in twin.as_row().items() if c != "id"},
                                          "study_name": study_name, "trial_number": trial_number})
            store.put(record)
    if record is not None and not need_model:
        return record, None, False
    if record is not None and Path(record.weights_path).is_file():
        return record, load_weights(record), False
    result = full_train(study_name, trial_number, user_attrs, prep, epochs, seed, device, weights_dir,
                        progress=progress, precision=precision)
    store.put(result.record)
    return result.record, result.model.cpu(), True


# ---------------------------------------------------------------------------------------------
# Ground truth as small CSVs that outlive any results folder

TRIAL_SETTINGS = ("size", "crop", "max_samples", "val_subset", "epochs", "schedule", "warmup", "precision", "loss",
                  "label_smoothing", "seed", "max_mflops", "objective")
CSV_KEY = ("study", "trial", "full_epochs", "gt_seed")


def fill_arch_keys(store: GroundTruthStore, study_name: str, trials: dict[int, Any], prep: PreparedData,
                   precision: str) -> None:
    """Give rows stored before architecture keys existed their key, so other studies can reuse them."""
    for r in store.records(study_name):
        if r.arch_key is None and r.trial_number in trials:
            r.arch_key = architecture_key(trials[r.trial_number].user_attrs, prep, precision)
            store.put(r)


def ground_truth_rows(opened: Any, store: GroundTruthStore) -> pd.DataFrame:
    """Every stored full training of a study as self-contained rows: what was trained (spec, optimiser),
    on what (data, split, trial settings), what its trial measured, and what full training scored."""
    from synthesis.outputs import is_trial_collapsed, trial_metrics

    study = opened.study
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    gt = store.table(study.study_name)
    settings = opened.settings
    rows = []
    for _, r in gt.iterrows():
        t = trials.get(int(r["trial_number"]))
        if t is None:
            continue
        row = {"dataset": dataset_name(settings.data), "data_path": settings.data or "",
               "data_fingerprint": opened.attrs.get("fingerprint"),
               "study": study.study_name, "trial": int(r["trial_number"]), "trial_state": t.state.name,
               "spec_hash": r["spec_hash"], "arch_json": json.dumps(t.user_attrs.get("arch"), sort_keys=True),
               "train_config_json": json.dumps(t.user_attrs.get("train_config"), sort_keys=True),
               "strategy": t.user_attrs.get("strategy", settings.strategy),
               "merge": ";".join(settings.merge), "drop": ";".join(settings.drop),
               "n_train": len(opened.plan["train"]), "n_test": len(opened.plan["test"])}
        row.update({f"trial_{k}": getattr(settings, k) for k in TRIAL_SETTINGS})
        metrics = trial_metrics(t)
        row.update(metrics)
        row["collapsed"] = is_trial_collapsed(t, metrics, len(opened.data.class_names))
        row.update({"full_epochs": int(r["epochs"]), "gt_seed": int(r["seed"]), "full_schedule": "cosine",
                    "gt_precision": settings.precision, **{k: float(r[k]) for k in (*TARGETS, "test_loss")},
                    "full_train_seconds": float(r["wall_seconds"]), "gt_device": r["device"],
                    "measured": str(r["created"])[:19]})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["trial", "full_epochs", "gt_seed"], ignore_index=True) if rows else pd.DataFrame()


def merge_ground_truth_csv(rows: pd.DataFrame, path: Path) -> Path:
    """Add these rows to a ground-truth CSV (rows already there with the same key are replaced)."""
    from synthesis.outputs import write_table

    path = Path(path)
    if path.is_file():
        old = pd.read_csv(path)
        keys = set(map(tuple, rows[list(CSV_KEY)].astype(str).to_numpy()))
        old = old[[tuple(k) not in keys for k in old[list(CSV_KEY)].astype(str).to_numpy()]]
        rows = pd.concat([old, rows], ignore_index=True).sort_values(list(CSV_KEY), ignore_index=True)
    return write_table(rows, path)


def read_ground_truth_tables(paths: list[Path]) -> pd.DataFrame:
    """Pool ground-truth CSVs (from ``correlate``'s export); one line naming any file that is not one."""
    from synthesis.errors import DataError
    from synthesis.outputs import read_table

    frames = []
    for p in map(Path, paths):
        df = read_table(p, "ground-truth table")
        missing = [c for c in (*CSV_KEY, *TARGETS) if c not in df.columns]
        if missing:
            raise DataError(f"{p} is not a galaxy-synth ground-truth table (no column {missing[0]!r})")
        frames.append(df.assign(table=p.name))
    return pd.concat(frames, ignore_index=True)


def mean_rows_over_seeds(rows: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """One row per (study, trial, full epochs) that has at least ``seeds`` seeds: targets averaged over
    its first ``seeds`` seeds, trial metrics kept."""
    rows = rows.sort_values("gt_seed")
    first = rows.groupby(["study", "trial", "full_epochs"], sort=False).head(seeds)
    agg = first.groupby(["study", "trial", "full_epochs"]).agg(
        **{t: (t, "mean") for t in TARGETS}, n_seeds=("gt_seed", "nunique"), full_train_seconds=("full_train_seconds", "sum"))
    agg = agg[agg["n_seeds"] >= seeds].reset_index()
    meta = rows.drop(columns=[*TARGETS, "gt_seed", "full_train_seconds", "test_loss", "measured", "gt_device"],
                     errors="ignore").drop_duplicates(["study", "trial", "full_epochs"])
    return agg.merge(meta, on=["study", "trial", "full_epochs"])
