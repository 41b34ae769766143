"""A throwaway PostgreSQL server on loopback, for the worker tests and bench/worker_throughput.py.

Uses Debian's 'postgresql' package binaries (``make postgres-server`` installs them; .ci/run calls
it). Runs the server as the 'postgres' system user when we are root, because it refuses root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class PostgresUnavailable(RuntimeError):
    """No server binaries, or the server would not start (the message says which)."""


def _binary(name: str) -> str | None:
    return shutil.which(name) or (sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [None])[-1]


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a fresh cluster in a temporary folder; yield its SQLAlchemy URL; stop and delete it."""
    import pwd

    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
                                  "'postgresql' package (make postgres-server; bash .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="galaxy-synth-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server as") from None
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "galaxy", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, text=True)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "start",
                        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1"],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        last = ((exc.stderr or exc.stdout or "").strip().splitlines() or ["no output"])[-1]
        raise PostgresUnavailable(f"could not start PostgreSQL: {last}") from None
    try:
        yield f"postgresql+psycopg://galaxy@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
