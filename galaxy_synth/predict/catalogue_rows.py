"""What a catalogue run classifies: image paths per row, the columns carried into the output, the extra inputs.

Rows come from a catalogue CSV (``file`` / ``file_<band>`` columns, paths relative to it) or from image files
named directly or found in folders. Built from the model folder's card alone (:class:`ModelFolder`), before
the network is loaded, so a bad catalogue is one line before any work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from galaxy_common import DataError
from synthesis.data import IMAGE_EXTENSIONS
from synthesis.data import FITS_EXTENSIONS

EXTRAS_FALLBACK = "training-set means (no --extra given)"


@dataclass
class CatalogueRows:
    """What to classify: image path(s) per row, the columns carried into the output, the model's extra inputs."""

    paths: list[tuple[str, ...]]
    carried: pd.DataFrame
    extras: np.ndarray
    extras_note: str | None = None  # set where the training means stood in for missing extra inputs

    def __len__(self) -> int:
        return len(self.paths)

    def signature(self) -> str:
        body = json.dumps([self.paths, self.carried.columns.tolist()], default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def rows_from_catalogue(loaded: Any, csv: str | Path, keep_columns: Sequence[str] = ()) -> CatalogueRows:
    """A catalogue CSV: ``file`` (or ``file_<band>`` for a per-band FITS model), optional ``id``, the model's
    extra inputs where present, ``keep_columns`` carried into the output. Paths are relative to the CSV."""
    csv = Path(csv)
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"catalogue not found: {csv}") from None
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read catalogue {csv}: {str(exc).splitlines()[0]}") from None
    layout = loaded.config.fits or {}
    file_columns = [f"file_{b}" for b in layout.get("band_names", ())] if layout.get("per_band_files") else ["file"]
    absent = [c for c in [*file_columns, *keep_columns] if c not in df.columns]
    if absent:
        raise DataError(f"catalogue {csv} has no column {absent[0]!r} (found: {', '.join(df.columns)})")
    base = csv.parent
    paths = [tuple(str(p if Path(p).is_absolute() else base / p) for p in row) for row in df[file_columns].itertuples(index=False)]
    carried = df[[c for c in dict.fromkeys(["id", *file_columns, *keep_columns]) if c in df.columns]].reset_index(drop=True)
    names = loaded.extra_names
    if names and all(n in df.columns for n in names):
        extras = df[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        if not np.isfinite(extras).all():
            row = int(np.argwhere(~np.isfinite(extras))[0, 0])
            raise DataError(f"catalogue {csv} line {row + 2}: non-numeric or missing {', '.join(names)}")
        return CatalogueRows(paths, carried, extras)
    return CatalogueRows(paths, carried, *_extras(loaded, None, paths))


def rows_from_files(loaded: Any, images: Sequence[str | Path], extras_csv: str | Path | None = None) -> CatalogueRows:
    """Image files named directly or found in folders; extra inputs from ``extras_csv`` (by file name or id)."""
    files = collect_images(images)
    return CatalogueRows([(str(f),) for f in files], pd.DataFrame({"file": [str(f) for f in files]}),
                         *_extras(loaded, extras_csv, files))


def _extras(loaded: Any, extras_csv: str | Path | None, files: Sequence[Any]) -> tuple[np.ndarray, str | None]:
    """The model's extra inputs (:func:`read_extras`; without a CSV, the training means) and the
    note that flags the fallback."""
    names = loaded.extra_names
    extras = read_extras(extras_csv, files, names, fallback=loaded.card["extra_inputs"].get("mean"))
    return extras, EXTRAS_FALLBACK if names and extras_csv is None else None


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, plus image files found (recursively) in named folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and (f.suffix.lower() in IMAGE_EXTENSIONS or f.name.lower().endswith(FITS_EXTENSIONS)))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"image or folder not found: {p}")
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS + FITS_EXTENSIONS))}) in {', '.join(map(str, paths))}")
    return files


def read_extras(csv: str | Path | None, files: Sequence[Path], names: Sequence[str],
                fallback: Sequence[float] | None = None) -> np.ndarray:
    """The model's extra inputs per file, from a CSV with a 'file' (name or path) or 'id' (stem) column.

    Without a CSV, ``fallback`` (the training-set means from the card) is used for every image, and
    the caller flags it; with no fallback either, it is one line saying what to pass.
    """
    if not names:
        return np.zeros((len(files), 0), dtype=np.float32)
    if csv is None:
        if fallback is None:
            raise DataError(f"this model needs extra inputs {', '.join(names)}: pass --extra CSV with a 'file' or 'id' column")
        return np.tile(np.asarray(fallback, dtype=np.float32), (len(files), 1))
    try:
        df = pd.read_csv(csv)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read --extra {csv}: {str(exc).splitlines()[0]}") from None
    absent = [n for n in names if n not in df.columns]
    if absent:
        raise DataError(f"--extra {csv} has no column {absent[0]!r}, which the model needs (needs: {', '.join(names)})")
    if "file" in df.columns:
        keys, key_of = df["file"].astype(str).map(lambda s: Path(s).name), (lambda f: f.name)
    elif "id" in df.columns:
        keys, key_of = df["id"].astype(str), (lambda f: f.stem)
    else:
        raise DataError(f"--extra {csv} needs a 'file' or 'id' column to match rows to images")
    table = df.assign(_key=keys.to_numpy()).drop_duplicates("_key").set_index("_key")
    missing = [f for f in files if key_of(f) not in table.index]
    if missing:
        raise DataError(f"--extra {csv} has no row for {missing[0]} ({len(missing)} image(s) without extra inputs)")
    values = table.loc[[key_of(f) for f in files], list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    if not np.isfinite(values).all():
        row = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise DataError(f"--extra {csv}: non-numeric or missing {', '.join(names)} for {files[row]}")
    return values
