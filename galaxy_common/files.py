"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Everything galaxy-synth writes (calibrations, tables, plots, weights, caches, model folders)
goes through these helpers. The temporary file gets a name unique to this process and call
(process id + random suffix), in the destination's folder (so the final ``os.replace`` is a rename on one file
system): two parallel workers writing the same file can never clobber each other's half-written
temporary. This module sits in the lowest package (``proxies``) so that every layer above can
share the one implementation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would survive the rename. The writer creates the file
    # with the user's usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_folder(folder: str | os.PathLike, write: Callable[[Path], Any]) -> Any:
    """Run ``write(tmp)`` into a fresh temporary folder beside ``folder``, then swap it in (an earlier folder of the
    name is replaced only then): a reader never sees a half-written folder. Returns what ``write`` returned."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        result = write(tmp)
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
