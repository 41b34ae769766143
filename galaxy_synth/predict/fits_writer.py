"""Predict's rows as one FITS binary table (``-o survey.fits``): written a chunk at a time, resumable, assembled at the end.

A FITS table cannot grow safely in place: its header states the row count and every string column's width,
which are known only when the last chunk is in. So each chunk is written whole, as a ``.npy`` record array
(renamed into place, so a kill never leaves half a part), into ``OUT.parts/`` beside the output — the
Parquet writer's design: a rerun of the same run (its signature in ``OUT.parts/_signature``) goes on after
the last whole part. When the run completes the parts are streamed, one at a time (memory stays one chunk),
into ``OUT`` (written under a temporary name, then renamed), and the folder is removed. The finished table's
header holds the run's signature (``PREDSIG``), so a rerun knows it is complete.

Columns are the CSV's: ``id``/``file``/status/class text as ASCII (UTF-8) strings as wide as their longest
value, probabilities float32, and a catalogue column carried with ``--keep-columns`` as a number where every
value is one (as ``pandas.read_csv`` reads the CSV output). Each column has its unit (TUNITn: probabilities
dimensionless, ra/dec deg) and a description (TCOMMn, and astropy's own column metadata so
``astropy.table.Table.read`` gives ``.description``); the header names the model (its card's ``spec_hash``,
study, trial, creation date, a hash of ``model.pt``), the software version and the date written.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from galaxy_common import DataError
from galaxy_synth.predict.chunk_writers import PartsFolder

NEEDS_ASTROPY = "FITS output needs astropy: pip install 'galaxy-synth[fits]' (or write a .csv or .parquet)"
TEXT_COLUMNS = ("id", "file", "status", "predicted", "extra_inputs")  # never turned into numbers
DESCRIPTIONS: dict[str, tuple[str | None, str]] = {  # (unit: "" dimensionless, None text), description
    "id": (None, "identifier from the input catalogue"),
    "file": (None, "image file"),
    "status": (None, "ok, or why the image could not be read"),
    "predicted": (None, "most probable class"),
    "confidence": ("", "calibrated probability of the predicted class"),
    "predictive_entropy": ("", "entropy of the calibrated probabilities, in nats"),
    "mutual_information": ("", "ensemble members' disagreement (entropy of the mean - mean entropy), nats"),
    "reliable": ("", "1: predictive entropy within the threshold chosen for the target error, else 0"),
    "domain_z": ("", "how unlike the training images, in training-set standard deviations"),
    "extra_inputs": (None, "where the model's extra inputs came from"),
    "ra": ("deg", "right ascension, from the input catalogue"),
    "dec": ("deg", "declination, from the input catalogue"),
    "z": ("", "redshift, from the input catalogue"),
    "z_err": ("", "redshift uncertainty, from the input catalogue"),
}


def column_meta(name: str) -> tuple[str | None, str]:
    """(unit, description) of an output column: None where the unit is not known (a carried column)."""
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    if name.startswith("p_"):
        return "", f"calibrated probability of class {name[2:]}"
    if name.startswith("file_"):
        return None, f"image file, band {name[5:]}"
    if name.endswith("_dirichlet"):  # a vote model's (synth --schema) columns, galaxy_synth.predict.votes
        return "", f"Dirichlet concentration of answer {name[:-len('_dirichlet')]}"
    if name.endswith("_fraction"):
        return "", f"predicted vote fraction (Dirichlet mean) of answer {name[:-len('_fraction')]}"
    return None, "copied from the input catalogue"


def _astropy() -> Any:
    try:
        from astropy.io import fits
    except ImportError:
        raise DataError(NEEDS_ASTROPY) from None
    return fits


def header_keys(model: Any) -> dict[str, tuple[Any, str]]:
    """The model and software a table came from, for its header (FITS keywords: at most 8 characters)."""
    import hashlib

    import galaxy_synth

    card = model.card
    weights = hashlib.sha256((model.folder / "model.pt").read_bytes()).hexdigest()[:16]
    return {"GSVERS": (galaxy_synth.__version__, "galaxy-synth version that wrote this table"),
            "MODSPEC": (str(card.get("spec_hash", "")), "model card spec_hash: the architecture"),
            "MODWTS": (weights, "sha256 of model.pt (first 16 hex digits)"),
            "MODSTUDY": (str(card.get("study", "")), "study the model came from"),
            "MODTRIAL": (str(card.get("trial", "")), "trial number in that study"),
            "MODMADE": (str(card.get("created", "")), "when the model was exported")}


class FitsChunkWriter:
    """Whole chunks as parts in ``OUT.parts/``, one FITS binary table ``OUT`` when the run completes."""

    def __init__(self, path: Path, signature: str, overwrite: bool = False,
                 header: dict[str, tuple[Any, str]] | None = None) -> None:
        self._fits = _astropy()
        self.path = Path(path)
        self.signature = signature
        self.header = dict(header or {})
        folder = self.path.with_name(self.path.name + ".parts")
        self._replace = overwrite and (self.path.exists() or folder.exists())
        self._parts = PartsFolder(folder, self.path, signature, replace=self._replace)
        written = _finished_signature(self._fits, self.path)
        if not overwrite:
            if self.path.exists() and written is None:
                raise DataError(f"{self.path} exists and was not written by a resumable predict: pass --overwrite or choose another -o")
            if (written not in (None, signature)) or (folder.exists() and self._parts.found_signature != signature):
                raise DataError(f"{self.path} is a run of another model, input list or option set (its header or "
                                f"{folder.name} says so): pass --overwrite or choose another -o")
        self.complete = not self._replace and written == signature
        if self.complete:
            self._next = int(self._fits.getval(self.path, "PREDCHNK", ext=1))
        else:
            self._next = 0 if self._replace else self._parts.whole_parts()

    @property
    def chunks_done(self) -> int:
        return self._next

    def append(self, table: pd.DataFrame, embeddings: np.ndarray | None = None) -> None:
        self._parts.write(self._next, _records(table))
        self._next += 1

    def finish(self) -> None:
        if self.complete:
            self._parts.remove()  # a kill between the rename and the clean-up
            return
        keys = {**self.header, "PREDSIG": (self.signature, "predict run signature (resume)"),
                "PREDCHNK": (self._next, "chunks in this run")}
        self._parts.assemble(self._next, lambda tmp, parts: _write_table(self._fits, tmp, parts, keys))
        self.complete = True


def _finished_signature(fits: Any, path: Path) -> str | None:
    """The run signature a finished table's header holds; None for no file, a foreign file or another format."""
    if not path.is_file():
        return None
    try:
        return str(fits.getval(path, "PREDSIG", ext=1))
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return None


def _records(table: pd.DataFrame) -> np.ndarray:
    """A chunk as a record array: text as UTF-8 bytes, numbers as they are (no objects: loads without pickle)."""
    columns = {}
    for name in table.columns:
        values = table[name]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            encoded = [str(v).encode() for v in values]
            columns[name] = np.array(encoded, dtype=f"S{max(1, max(map(len, encoded), default=1))}")
        elif pd.api.types.is_bool_dtype(values.dtype):  # a FITS logical is 'T'/'F', not numpy's bytes: 1/0 instead
            columns[name] = values.to_numpy().astype(np.uint8)
        else:
            columns[name] = values.to_numpy()
    return np.rec.fromarrays(list(columns.values()), names=list(columns)) if columns else np.zeros(0)


def _final_dtypes(parts: list[Path]) -> tuple[list[tuple[str, str]], int]:
    """The table's big-endian column types over all parts (strings as wide as their longest value, carried
    columns numeric where every value is a number) and its row count."""
    widths: dict[str, int] = {}
    numeric: dict[str, str | None] = {}
    order: list[str] = []
    rows = 0
    for records in _loaded(parts):
        rows += len(records)
        for name in records.dtype.names or ():
            if name not in widths:
                order.append(name)
                widths[name], numeric[name] = 0, None if records.dtype[name].kind == "S" else records.dtype[name].str
            if records.dtype[name].kind == "S":
                widths[name] = max(widths[name], records.dtype[name].itemsize)
                if name not in TEXT_COLUMNS and not name.startswith("file_") and numeric.get(name) != "text":
                    numeric[name] = _number_kind(records[name], numeric[name])
    types = []
    for name in order:
        kind = numeric[name]
        if kind in (None, "text"):
            types.append((name, f"S{max(1, widths[name])}"))
        else:
            types.append((name, np.dtype(kind).newbyteorder(">").str))
    return types, rows


def _number_kind(values: np.ndarray, sofar: str | None) -> str:
    """'<i8' while every value so far is an integer, '<f8' while a number, else 'text'."""
    try:
        parsed = pd.to_numeric(pd.Series(np.char.decode(values)), errors="raise")
    except (ValueError, TypeError):
        return "text"
    kind = "<i8" if pd.api.types.is_integer_dtype(parsed.dtype) else "<f8"
    return "<f8" if "<f8" in (kind, sofar) else kind


def _loaded(parts: list[Path]) -> Iterator[np.ndarray]:
    for part in parts:
        yield np.load(part, mmap_mode="r", allow_pickle=False)


def _converted(records: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.empty(len(records), dtype=dtype)
    for name in dtype.names:
        values = records[name]
        if dtype[name].kind in "if" and values.dtype.kind == "S":
            values = pd.to_numeric(pd.Series(np.char.decode(values))).to_numpy()
        out[name] = values
    return out


def _write_table(fits: Any, target: Path, parts: list[Path], keys: dict[str, tuple[Any, str]]) -> None:
    """Stream the parts into one FITS file: a header for all the rows, then each part's rows, then the padding."""
    types, rows = _final_dtypes(parts)
    dtype = np.dtype(types)
    header = _table_header(fits, dtype)
    header["NAXIS2"] = rows
    for i, name in enumerate(dtype.names, start=1):
        header[f"TCOMM{i}"] = column_meta(name)[1][:68]
    for key, (value, comment) in {**keys, "DATE": (_now(), "UTC date this table was written")}.items():
        header[key] = (value, comment)
    with open(target, "wb") as f:
        fits.PrimaryHDU().writeto(f)
        f.write(header.tostring().encode("ascii"))
        written = 0
        for records in _loaded(parts):
            block = _converted(records, dtype).tobytes()
            f.write(block)
            written += len(block)
        f.write(b"\0" * (-written % 2880))
        f.flush()
        os.fsync(f.fileno())
    if written != rows * dtype.itemsize:
        raise RuntimeError(f"FITS assembly wrote {written} bytes for {rows} rows of {dtype.itemsize}")


def _table_header(fits: Any, dtype: np.dtype) -> Any:
    """A zero-row table with the columns' types, units and descriptions, as astropy writes it (with its column
    metadata, so Table.read restores the descriptions): its header is the file's."""
    import io

    from astropy.table import Table

    table = Table(np.zeros(0, dtype=dtype))
    for name in dtype.names:
        unit, text = column_meta(name)
        table[name].description = text
        if unit is not None:
            table[name].unit = unit
    buffer = io.BytesIO()
    table.write(buffer, format="fits")
    buffer.seek(0)
    with fits.open(buffer) as hdus:
        return hdus[1].header.copy()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def read_fits_table(path: str | Path) -> pd.DataFrame:
    """A FITS predict output as a DataFrame (strings as str), as :func:`pandas.read_csv` gives the CSV output."""
    from astropy.table import Table

    table = Table.read(path, format="fits")
    for name in table.colnames:
        if table[name].dtype.kind == "S":  # text is stored as UTF-8 (a path may not be ASCII)
            table[name] = np.char.decode(np.asarray(table[name]), "utf-8")
    return table.to_pandas()
