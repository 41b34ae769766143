"""Where a study lives: an Optuna RDB storage (a SQLite file by default, PostgreSQL for many machines).

Robustness comes from Optuna's own pieces, not a scheduler of ours: heartbeats with
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` re-queue a trial whose process died.
SQLite is made safe for several local worker processes (:func:`_serialise_sqlite_writes`).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from synthesis.errors import GalaxySynthError
from synthesis.settings import default_storage_url

MAX_RETRY = 3  # a trial whose worker dies is retried at most this often


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Re-queues a failed trial (same parameters, same seed): used for dead workers and for Ctrl-C."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def open_storage(url: str, heartbeat_interval: int = 10, grace_period: int | None = None) -> RDBStorage:
    """An RDB storage (SQLite file or any SQLAlchemy URL) with heartbeats and stale-trial retry."""
    engine_kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        path = Path(url[len("sqlite:///"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalaxySynthError(f"cannot create the folder of the study database {path}: {exc.strerror}") from None
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise GalaxySynthError(f"the study database {path} is not writable (choose another --results or --storage)")
        # Wait for a lock instead of failing at once; isolation_level=None hands BEGIN to us.
        engine_kwargs = {"connect_args": {"timeout": 60, "isolation_level": None}}
    elif url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"pool_pre_ping": True}  # a long trial outlives idle server connections
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9; we rely on them on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period or 3 * heartbeat_interval,
            heartbeat_stale_trial_callback=retry_callback(),
        )
    if sqlite:
        _serialise_sqlite_writes(storage.engine)
    return storage


def _serialise_sqlite_writes(engine: sqlalchemy.engine.Engine) -> None:
    """Every transaction takes SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``), in WAL mode.

    Why: SQLite ignores ``SELECT … FOR UPDATE``, and Python's sqlite3 runs the SELECT outside the
    transaction, so two workers can both pop the same WAITING trial (a stale-trial retry or an
    enqueued one): it runs twice and one worker fails with "Cannot tell a COMPLETE trial"
    (bench/storage_race.py reproduces it). Taking the lock at BEGIN makes read-check-update
    atomic; WAL lets readers (rank, the dashboard) go on while a worker writes.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened by RDBStorage's own setup predate the listeners


def existing_storage_url(storage: str | None, results: Path, hint: str = "--storage") -> str:
    """``storage`` as given, else the results folder's SQLite database, which must exist."""
    if storage:
        return storage
    if not (Path(results) / "study.db").exists():
        raise GalaxySynthError(f"no study database at {Path(results) / 'study.db'} (run 'galaxy-synth synth' first, or pass {hint})")
    return default_storage_url(results)


def study_names(storage: str | optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_existing_study(name: str | None, storage: str) -> optuna.Study:
    """Load a study, or fail with one line naming the studies that do exist there.

    ``name=None`` picks the only study in the storage, or the most recently active of several
    (and says which, on the ``galaxy_synth`` logger).
    """
    names = study_names(storage)
    if name is None:
        if not names:
            raise GalaxySynthError(f"{storage} holds no study yet (run 'galaxy-synth synth' first)")
        name = names[0] if len(names) == 1 else _most_recent(storage, names)
        if len(names) > 1:
            logging.getLogger("galaxy_synth").warning(
                "using study %r, the most recently active of %d in %s (--study to choose: %s)", name, len(names), storage,
                ", ".join(names))
    if name not in names:
        raise GalaxySynthError(f"no study {name!r} in {storage} (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def _most_recent(storage: str, names: list[str]) -> str:
    def last_active(study_name: str) -> float:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
        stamps = [t.datetime_complete or t.datetime_start for t in trials if t.datetime_start is not None]
        return max(stamps).timestamp() if stamps else 0.0

    return max(names, key=last_active)
