"""Where predict's rows go, a chunk at a time: one CSV with a journal, or a folder of Parquet parts
(a FITS table: :mod:`galaxy_synth.predict.fits_writer`).

Both resume: a rerun of the same run (same model, rows and options: the signature) goes on after
the last whole chunk; another run's output is never silently mixed in or overwritten. :class:`PartsFolder`
is the ``.npy`` parts folder from which a FITS table and an embeddings array are assembled at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from galaxy_common import DataError


class CsvChunkWriter:
    """One CSV appended a chunk at a time, with a journal of what is whole; resumes where a run stopped."""

    def __init__(self, path: Path, signature: str, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".progress.json")
        self.signature = signature
        state = json.loads(self.journal.read_text()) if self.journal.is_file() else None
        if state is not None and state.get("signature") != signature and not overwrite:
            raise DataError(f"{self.path} is a run of another model, input list or option set (its journal says so): "
                            "pass --overwrite or choose another -o")
        if state is None and self.path.exists() and not overwrite:
            raise DataError(f"{self.path} exists and was not written by a resumable predict: pass --overwrite or choose another -o")
        self._replace = state is None or state.get("signature") != signature
        if self._replace:
            state = {"signature": signature, "chunks": 0, "rows": 0, "bytes": 0, "complete": False}
        self.state = state
        self._opened = False

    def _open(self) -> None:
        """The first write: only now is a replaced output removed and a half-written chunk cut off, so a run that
        fails before its first chunk (a corrupt model.pt, a stop) leaves the file as it was."""
        if self._opened:
            return
        if self._replace:
            self.path.unlink(missing_ok=True)
        with open(self.path, "ab") as f:  # drop a chunk a kill left half-written
            f.truncate(self.state["bytes"])
        self._opened = True

    @property
    def chunks_done(self) -> int:
        return int(self.state["chunks"])

    @property
    def complete(self) -> bool:
        return bool(self.state.get("complete"))

    def append(self, table: pd.DataFrame, embeddings: np.ndarray | None = None) -> None:
        if embeddings is not None:
            raise ValueError("a CSV keeps its embeddings beside it (galaxy_synth.predict.embeddings.WithEmbeddingFile)")
        self._open()
        with open(self.path, "ab") as f:
            f.write(table.to_csv(index=False, header=self.state["bytes"] == 0).encode())
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        self.state.update(chunks=self.state["chunks"] + 1, rows=self.state["rows"] + len(table), bytes=size)
        self._save()

    def finish(self) -> None:
        self._open()
        self.state["complete"] = True
        self._save()

    def _save(self) -> None:
        from galaxy_common import atomic_write_text

        atomic_write_text(self.journal, json.dumps(self.state))


class ParquetChunkWriter:
    """A folder of ``part-NNNNNN.parquet`` files, one per chunk, each written whole (pandas and Dask read the folder)."""

    def __init__(self, path: Path, signature: str, overwrite: bool = False) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError("Parquet output needs pyarrow (pip install pyarrow); or write a .csv") from None
        self.path = Path(path)
        self.signature = signature
        marker = self.path / "_signature"
        if self.path.exists() and not overwrite:
            if not marker.is_file() or marker.read_text() != signature:
                raise DataError(f"{self.path} holds another run (or not a predict output): pass --overwrite or choose another -o")
        self._replace = self.path.exists() and overwrite
        parts = [] if self._replace else sorted(self.path.glob("part-*.parquet"))
        self._next = len(parts)  # parts are written in order, so the first missing one is where to go on
        self.complete = not self._replace and (self.path / "_complete").is_file()
        self._opened = False

    def _open(self) -> None:
        """The first write: only now is a replaced output removed (see :meth:`CsvChunkWriter._open`)."""
        if self._opened:
            return
        if self._replace:
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "_signature").write_text(self.signature)
        self._opened = True

    @property
    def chunks_done(self) -> int:
        return self._next

    def append(self, table: pd.DataFrame, embeddings: np.ndarray | None = None) -> None:
        """One part; ``embeddings`` [rows, width] go in as an ``embedding`` column (a fixed-size list of float16)."""
        self._open()
        part = self.path / f"part-{self._next:06d}.parquet"
        tmp = self.path / f".{part.name}.tmp"  # hidden: readers of the folder skip it until it is whole
        if embeddings is None:
            table.to_parquet(tmp, index=False)
        else:
            _write_with_embeddings(tmp, table, embeddings)
        os.replace(tmp, part)
        self._next += 1

    def finish(self) -> None:
        self._open()
        (self.path / "_complete").write_text("")


def _write_with_embeddings(path: Path, table: pd.DataFrame, embeddings: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(embeddings, dtype=np.float16)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float16()), vectors.shape[1])
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False).append_column("embedding", column), path)


class PartsFolder:
    """Whole ``part-NNNNNN.npy`` files in a folder beside one output assembled from them when the run completes, and
    the ``_signature`` of the run writing them (a rerun of the same run goes on after the last whole part).

    Nothing is touched before the first write: only then, with ``replace``, are an earlier output and its parts
    removed (see :meth:`CsvChunkWriter._open`)."""

    def __init__(self, folder: Path, output: Path, signature: str, replace: bool) -> None:
        self.folder, self.output, self.signature, self.replace = Path(folder), Path(output), signature, replace
        marker = self.folder / "_signature"
        self.found_signature = marker.read_text() if marker.is_file() else None  # of the run whose parts are there
        self._opened = False

    def part(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.npy"

    def whole_parts(self) -> int:
        """Parts are written in order, each renamed into place whole: the first missing one is where to go on."""
        n = 0
        while self.part(n).is_file():
            n += 1
        return n

    def write(self, index: int, array: np.ndarray) -> None:
        """Part ``index``, written under a hidden name and synced, then renamed into place (a kill leaves none of it)."""
        self._open()
        part = self.part(index)
        tmp = self.folder / f".{part.name}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, part)

    def assemble(self, chunks: int, write: Callable[[Path, list[Path]], None]) -> None:
        """``write(tmp, parts)`` the output from the first ``chunks`` parts under a temporary name, rename it into
        place, then remove the folder (a kill between the two leaves a whole output)."""
        self._open()
        tmp = self.output.with_name(f".{self.output.name}.tmp")
        write(tmp, [self.part(i) for i in range(chunks)])
        os.replace(tmp, self.output)
        shutil.rmtree(self.folder)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _open(self) -> None:
        if self._opened:
            return
        if self.replace:
            self.output.unlink(missing_ok=True)
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "_signature").write_text(self.signature)
        self._opened = True
