"""Where a study lives: any Optuna storage a user has — a SQLite file (the default), a database server
(PostgreSQL, MySQL), or a journal file on a shared filesystem for clusters without a database server.

Robustness comes from Optuna's own pieces, not a scheduler of ours: heartbeats with
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` re-queue a trial whose process died.
SQLite is made safe for several local worker processes (:func:`_serialise_sqlite_writes`); the
journal storage (Optuna's ``JournalStorage`` on a ``JournalFileBackend``, its own file lock) gets
the same heartbeats through Optuna's ``BaseHeartbeat`` interface (:class:`HeartbeatJournalStorage`).

Every storage problem a user can make is one line before any data is decoded
(:func:`check_storage`), and a URL is only ever shown with its password masked (:func:`masked`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from synthesis import GalaxySynthError
from synthesis import STORAGE_ENV, default_storage_url

MAX_RETRY = 3  # a trial whose worker dies is retried at most this often


JOURNAL_PREFIX = "journal:"


DRIVER_EXTRAS = {"postgresql": "pip install 'galaxy-synth[postgres]'", "mysql": "pip install 'galaxy-synth[mysql]' and "
                 "write mysql+pymysql://…"}


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Re-queues a failed trial (same parameters, same seed): used for dead workers and for Ctrl-C."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def masked(url: str) -> str:
    """The URL with its password replaced by ``***`` (SQLAlchemy's own rendering where it parses)."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: mask anything between ':' and '@' after the scheme
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:PATH`` storage URL (``journal:///abs/path`` too), else None."""
    if not url.startswith(JOURNAL_PREFIX):
        return None
    rest = url[len(JOURNAL_PREFIX):]
    return Path(rest[2:] if rest.startswith("///") else rest)


def check_storage(url: str) -> None:
    """One line (GalaxySynthError) for every storage mistake, before any data is decoded or anything written.

    Unparsable URL, unknown scheme, missing driver (naming the extra to install), server unreachable
    or refusing the login (host and port named, never the password), database missing, a SQLite
    file or journal in a folder that cannot be written.
    """
    shown = masked(url)
    journal = journal_path(url)
    if journal is not None:
        _check_writable_file(journal, "journal file")
        _check_journal(journal)
        return
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise GalaxySynthError(f"--storage {shown!r} is not a storage URL (e.g. sqlite:///results/study.db, "
                               f"postgresql+psycopg://user@host/db, or journal:/shared/studies.journal)") from None
    backend = parsed.get_backend_name()
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise GalaxySynthError(f"--storage {shown}: unknown scheme {parsed.drivername!r} (sqlite, postgresql, mysql, "
                               f"or journal:PATH for a journal file)") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = DRIVER_EXTRAS.get(backend, f"install the Python driver for {parsed.drivername}")
        raise GalaxySynthError(f"--storage {shown}: the database driver is not installed ({exc.name or exc}): {hint}") from None
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise GalaxySynthError(f"--storage {shown}: an in-memory SQLite database cannot hold a study: give a file")
        _check_writable_file(Path(parsed.database), "study database")
        return
    _check_server(url, parsed)


def _check_writable_file(path: Path, what: str) -> None:
    """The file, or the folder it would be made in, can be written (nothing is created here)."""
    if path.exists() and path.is_dir():
        raise GalaxySynthError(f"the {what} {path} is a folder, not a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise GalaxySynthError(f"the {what} {path} is not writable (choose another --results or --storage)")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise GalaxySynthError(f"cannot create the {what} {path}: {folder} is not a writable folder "
                               f"(choose another --results or --storage)")


def _check_journal(path: Path) -> None:
    """An existing file must be an Optuna journal: JSON lines, each an operation (``op_code``)."""
    import json

    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        ok = "op_code" in json.loads(first)
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise GalaxySynthError(f"{path} is not an Optuna journal file (its first line is not a journal operation); "
                               f"choose another journal:PATH")


def _check_server(url: str, parsed: sqlalchemy.engine.URL) -> None:
    """Connect once with a short timeout; one line naming host, port and database, never the password."""
    where = f"{parsed.host or 'localhost'}:{parsed.port or 'default port'}"
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        if parsed.password:
            reason = reason.replace(str(parsed.password), "***")
        raise GalaxySynthError(f"cannot use the storage server {where}, database {parsed.database!r} as "
                               f"{parsed.username or 'the default user'}: {reason}") from None
    finally:
        engine.dispose()


_OPENED: dict[tuple[str, int, int | None], BaseStorage] = {}


def open_storage(url: str, heartbeat_interval: int = 10, grace_period: int | None = None) -> BaseStorage:
    """The Optuna storage of a URL, with heartbeats and stale-trial retry (one object per URL and process)."""
    key = (url, heartbeat_interval, grace_period)
    if key not in _OPENED:
        check_storage(url)
        _OPENED[key] = _open(url, heartbeat_interval, grace_period or 3 * heartbeat_interval)
    return _OPENED[key]


def _open(url: str, heartbeat_interval: int, grace_period: int) -> BaseStorage:
    journal = journal_path(url)
    local = journal if journal is not None else (Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)  # check_storage said it can be made
    if journal is not None:
        return HeartbeatJournalStorage(journal, heartbeat_interval, grace_period, retry_callback())
    engine_kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite:///")
    if sqlite:  # wait for a lock instead of failing at once; isolation_level=None hands BEGIN to us
        engine_kwargs = {"connect_args": {"timeout": 60, "isolation_level": None}}
    elif url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"pool_pre_ping": True}  # a long trial outlives idle server connections
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9; we rely on them on purpose
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                     grace_period=grace_period, heartbeat_stale_trial_callback=retry_callback())
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
            # Two processes creating one new database both write its schema ("UNIQUE constraint failed:
            # alembic_version", "table studies already exists"): the loser finds it made a moment later
            # (seen with two searches started at once on a fresh SQLite file).
            race = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if attempt == 4 or not race:
                raise
            time.sleep(0.2 * (attempt + 1))
    if sqlite:
        _serialise_sqlite_writes(storage.engine)
    return storage


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage on a file, with the heartbeats Optuna's RDB storage has.

    A worker's heartbeat thread (Optuna's own, started by ``study.optimize``) writes the time into
    the running trial's system attrs every ``heartbeat_interval`` seconds; a RUNNING trial silent
    for ``grace_period`` is stale, and ``optuna.storages.fail_stale_trials`` fails it and re-queues
    it through the callback, exactly as on SQLite or PostgreSQL. The workers' clocks are compared,
    so the machines of a cluster should keep time (NTP); the grace period covers small skews.
    """

    HEARTBEAT_KEY = "galaxy_synth:heartbeat"

    def __init__(self, path: Path, heartbeat_interval: int, grace_period: int,
                 callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(JournalFileBackend(str(path)))  # check_storage has made sure the file is a journal
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._callback = callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, self.HEARTBEAT_KEY, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # The later of its last beat and its start: a retry copies the dead trial's system attrs, old
            # beat included, and must not look stale between being popped and its own first beat.
            beats = [float(b) for b in (trial.system_attrs.get(self.HEARTBEAT_KEY),) if b is not None]
            if trial.datetime_start is not None:
                beats.append(trial.datetime_start.timestamp())
            if beats and now - max(beats) > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._callback


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
    """``storage`` as given, else ``$GALAXY_SYNTH_STORAGE``, else the results folder's SQLite database, which must exist."""
    url = storage or os.environ.get(STORAGE_ENV)
    if url:
        check_storage(url)
        return url
    if not (Path(results) / "study.db").exists():
        raise GalaxySynthError(f"no study database at {Path(results) / 'study.db'} (run 'galaxy-synth synth' first, or pass {hint})")
    return default_storage_url(results)


def study_names(storage: str | BaseStorage) -> list[str]:
    """The studies in a storage. ``storage.get_all_studies()``, not ``optuna.get_all_study_summaries``: the
    summaries count every study's trials (8 s for 15 studies of ~500 trials, measured), names need none."""
    opened = open_storage(storage) if isinstance(storage, str) else storage
    return [s.study_name for s in opened.get_all_studies()]


def find_study(storage: BaseStorage, name: str) -> optuna.study.FrozenStudy | None:
    """One study's name, attrs and id, without reading any trial (None if the storage has no such study)."""
    return next((s for s in storage.get_all_studies() if s.study_name == name), None)


def load_existing_study(name: str | None, storage: str) -> optuna.Study:
    """Load a study, or fail with one line naming the studies that do exist there.

    ``name=None`` picks the only study in the storage, or the most recently active of several
    (and says which, on the ``galaxy_synth`` logger).
    """
    names = study_names(storage)
    shown = masked(storage)
    if name is None:
        if not names:
            raise GalaxySynthError(f"{shown} holds no study yet (run 'galaxy-synth synth' first)")
        name = names[0] if len(names) == 1 else _most_recent(storage, names)
        if len(names) > 1:
            logging.getLogger("galaxy_synth").warning(
                "using study %r, the most recently active of %d in %s (--study to choose: %s)", name, len(names), shown,
                ", ".join(names))
    if name not in names:
        raise GalaxySynthError(f"no study {name!r} in {shown} (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _most_recent(storage: str, names: list[str]) -> str:
    def last_active(study_name: str) -> float:
        trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).get_trials(deepcopy=False)
        stamps = [t.datetime_complete or t.datetime_start for t in trials if t.datetime_start is not None]
        return max(stamps).timestamp() if stamps else 0.0

    return max(names, key=last_active)
