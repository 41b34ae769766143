"""Where ground truth lives: one record per full training, one interface for every storage.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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
    # Mean absolute error of the predicted class probabilities against the vote fractions (--soft-labels studies).
    fraction_mae: Mapped[float | None] = mapped_column(Float, nullable=True)

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
    from synthesis.search import journal_path

    journal = journal_path(storage_url)
    if journal is not None:
        return JournalGroundTruthStore(journal.with_name(journal.name + ".ground-truth.jsonl"))
    return SqlGroundTruthStore(storage_url)
