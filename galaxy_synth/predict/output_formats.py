"""What ``predict -o OUT`` may be, chosen by its suffix: a CSV, a Parquet folder or a FITS binary table.

An unknown suffix is one line before any work (a ``.fits`` name on CSV text would not open in astropy,
a ``.txt`` would be guessed at). :func:`open_writer` gives the resumable chunk writer for each, with
``--embeddings`` in the Parquet parts or beside the table (:mod:`galaxy_synth.predict.embeddings`);
:func:`read_output` reads any of them back as one table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from galaxy_common import DataError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".fits": "fits", ".fit": "fits"}


class ChunkWriter(Protocol):
    """What classify_catalogue writes through: whole chunks in order, resumable, then a finish."""

    chunks_done: int
    complete: bool

    def append(self, table: pd.DataFrame, embeddings: np.ndarray | None = None) -> None: ...

    def finish(self) -> None: ...


def output_format(out: str | Path) -> str:
    """'csv', 'parquet' or 'fits' for an output path, or one line naming the suffixes there are."""
    kind = FORMATS.get(Path(out).suffix.lower())
    if kind is None:
        raise DataError(f"-o {out}: unknown output suffix {Path(out).suffix or '(none)'!r}: use .csv, "
                        ".parquet (a folder of parts; needs pyarrow) or .fits (a binary table; needs astropy)")
    return kind


def open_writer(out: Path, signature: str, overwrite: bool = False, model: Any = None,
                embeddings: bool = False) -> ChunkWriter:
    """The chunk writer for ``out``'s format (``model``: the :class:`ModelFolder` a FITS header names)."""
    from galaxy_synth.predict.chunk_writers import CsvChunkWriter, ParquetChunkWriter

    kind = output_format(out)
    if kind == "parquet":
        return ParquetChunkWriter(out, signature, overwrite)
    if kind == "fits":
        from galaxy_synth.predict.fits_writer import FitsChunkWriter, header_keys

        writer: Any = FitsChunkWriter(out, signature, overwrite, header_keys(model) if model is not None else None)
    else:
        writer = CsvChunkWriter(out, signature, overwrite)
    if embeddings:
        from galaxy_synth.predict.embeddings import WithEmbeddingFile

        return WithEmbeddingFile(writer, out, signature, overwrite)
    return writer


def read_output(out: str | Path) -> pd.DataFrame:
    """A predict output back as one table: a CSV, a Parquet folder of parts, or a FITS table."""
    kind = output_format(out)
    if kind == "parquet":
        return pd.read_parquet(out)
    if kind == "fits":
        from galaxy_synth.predict.fits_writer import read_fits_table

        return read_fits_table(out)
    return pd.read_csv(out)


def embeddings_path(out: str | Path) -> Path:
    """Where a CSV or FITS output's embeddings are (a Parquet output holds them in its ``embedding`` column)."""
    out = Path(out)
    return out.with_name(out.name + ".embeddings.npy")
