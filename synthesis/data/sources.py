"""Listing a source: which files (or arrays), which labels, which extra columns, per input format (labels.csv folder, ImageFolder, Galaxy10 HDF5, the procedural set).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from synthesis.data.decode import IMAGE_EXTENSIONS
from synthesis.data.schema import QuestionSchema, class_labels, vote_counts
from synthesis.data.fits import (
    BAND_COLUMN_PREFIX,
    FitsLayout,
    astropy_fits,
    band_indices,
    is_fits,
)
from synthesis import DataError

FILE_COLUMNS = ("file", "filename", "image", "path")


NAME_COLUMNS = ("label_name", "class", "class_name")


DEFAULT_EXTRA_COLUMNS = ("z", "z_err", "redshift", "redshift_err")


SYNTHETIC_SOURCE = "synthetic"


GALAXY10_SDSS_NAMES = (
    "disk_faceon_no_spiral", "smooth_round", "smooth_inbetween", "smooth_cigar",
    "disk_edgeon_rounded_bulge", "disk_edgeon_boxy_bulge", "disk_edgeon_no_bulge",
    "disk_faceon_tight_spiral", "disk_faceon_medium_spiral", "disk_faceon_loose_spiral",
)


GALAXY10_DECALS_NAMES = (
    "disturbed", "merging", "round_smooth", "inbetween_round_smooth", "cigar_smooth",
    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral",
    "edgeon_no_bulge", "edgeon_with_bulge",
)


@dataclass(frozen=True)
class SourceOptions:
    """What a user says about a catalogue beyond the class map: FITS bands and HDU, vote columns, kept columns."""

    bands: str | None = None
    hdu: str | int | None = None
    soft_labels: tuple[str, ...] = ()
    schema: QuestionSchema | None = None  # --schema: vote counts per answer of a tree of questions
    keep_columns: tuple[str, ...] = ()
    id_column: str = "id"


@dataclass
class Listing:
    files: list[str] | None  # None for in-memory sources (HDF5, synthetic)
    labels: np.ndarray
    class_names: tuple[str, ...]
    ids: list[str]
    extras: np.ndarray
    extra_names: tuple[str, ...]
    content_hash: str
    kind: str
    arrays: np.ndarray | None = None
    default_crop: float = 0.5
    fits: FitsLayout | None = None  # FITS cutouts: files holds a path or a tuple of per-band paths per row
    catalogue: dict[str, list[str]] | None = None  # columns carried through (ids, ra, dec…)
    soft: np.ndarray | None = None  # vote fractions [N, classes] (--soft-labels)
    votes: np.ndarray | None = None  # vote counts [N, answers] (--schema)


def _hash_files(paths: Sequence, extra: bytes = b"") -> str:
    h = hashlib.sha256(extra)
    for p in (q for row in paths for q in (row if isinstance(row, tuple) else (row,))):
        h.update(p.encode())
        with open(p, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def _check_extras(df: pd.DataFrame, columns: Sequence[str], where: str) -> np.ndarray:
    if not columns:
        return np.zeros((len(df), 0), dtype=np.float32)
    values = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        numeric = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numeric)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where} line {i + 2}: column {col!r} is {df[col].iloc[i]!r} (need a finite number)")
        values[:, j] = numeric
    return values.astype(np.float32)


def _list_csv_folder(root: Path, extra_columns: Sequence[str] | None, options: SourceOptions) -> Listing:
    csv_path = root / "labels.csv"
    where = str(csv_path)
    df = read_labels_csv(csv_path)
    cols = set(df.columns)
    band_columns = [c for c in df.columns if c.startswith(BAND_COLUMN_PREFIX)]
    file_col = next((c for c in FILE_COLUMNS if c in cols), None)
    if file_col is None and "id" not in cols and not band_columns:
        raise DataError(f"{where} has no image column: need one of {FILE_COLUMNS} or 'id' (found: {', '.join(df.columns)})")
    ids = _unique_ids(df[options.id_column] if options.id_column in cols else
                      df["id"] if "id" in cols else df[file_col or band_columns[0]], where)
    labels, class_names, soft = labels_of(df, where, options.soft_labels) if options.schema is None or \
        options.schema.class_question is None else (None, (), None)
    votes = vote_counts(df, options.schema, where) if options.schema is not None else None
    if votes is not None and labels is None:
        labels, class_names = class_labels(votes, options.schema, where)
    if band_columns:
        files, layout = _band_files(df, root, band_columns, options, where)
    else:
        files = _image_files(df, root, file_col, ids, where)
        layout = _fits_layout(files, options, where)
    if extra_columns is None:
        extra_names = tuple(c for c in DEFAULT_EXTRA_COLUMNS if c in cols)
    else:
        missing = [c for c in extra_columns if c not in cols]
        if missing:
            raise DataError(f"{where} has no column {missing[0]!r} (asked for by --extra-columns; found: {', '.join(df.columns)})")
        extra_names = tuple(extra_columns)
    extras = _check_extras(df, extra_names, where)
    missing = [c for c in options.keep_columns if c not in cols]
    if missing:
        raise DataError(f"{where} has no column {missing[0]!r} (asked for by --keep-columns; found: {', '.join(df.columns)})")
    catalogue = {"id": ids, **{c: df[c].astype(str).tolist() for c in options.keep_columns}}
    # (the options enter the hash only where given: data sets listed before they existed keep their fingerprint)
    content = _hash_files(files, csv_path.read_bytes() + (repr(options).encode() if options != SourceOptions() else b""))
    return Listing(files, labels, class_names, ids, extras, extra_names, content, "fits" if layout else "csv",
                   fits=layout, catalogue=catalogue, soft=soft, votes=votes)


def _fits_layout(files: list[str], options: SourceOptions, where: str) -> FitsLayout | None:
    """One FITS file per row (an image or a band cube), or None for 8-bit images; never a mix."""
    kinds = {is_fits(f) for f in files}
    if kinds == {False}:
        if options.bands or options.hdu is not None:
            raise DataError(f"{where}: --bands and --hdu apply to FITS files, and this catalogue lists none")
        return None
    if len(kinds) > 1:
        first = next(f for f in files if is_fits(f) != is_fits(files[0]))
        raise DataError(f"{where}: FITS and other images in one catalogue (e.g. {Path(first).name}); use one kind")
    astropy_fits()  # the extra is installed, or one line says which
    bands = band_indices(options.bands)
    if options.bands and bands is None:
        raise DataError(f"--bands {options.bands!r}: for band cubes give plane indices, e.g. 0,1,2")
    names = tuple(f"band{b}" for b in bands) if bands is not None else ()
    return FitsLayout(options.hdu, bands, names, per_band_files=False)


def _band_files(df: pd.DataFrame, root: Path, band_columns: list[str], options: SourceOptions,
                where: str) -> tuple[list[tuple[str, ...]], FitsLayout]:
    """One FITS file per band and row (columns file_g, file_r, …), in --bands order (default: the columns')."""
    names = [c[len(BAND_COLUMN_PREFIX):] for c in band_columns]
    if options.bands:
        wanted = [b.strip() for b in options.bands.split(",") if b.strip()]
        unknown = [b for b in wanted if b not in names]
        if unknown:
            raise DataError(f"--bands {options.bands!r}: {where} has no column file_{unknown[0]} (bands: {', '.join(names)})")
        names = wanted
    astropy_fits()
    files = []
    for i, row in enumerate(df.itertuples(index=False)):
        paths = []
        for name in names:
            rel = str(getattr(row, BAND_COLUMN_PREFIX + name)).strip()
            path = root / rel if (root / rel).is_file() else root / "images" / rel
            if not rel or not path.is_file():
                raise DataError(f"{where} line {i + 2}: listed image does not exist: {root / rel}")
            paths.append(str(path))
        files.append(tuple(paths))
    return files, FitsLayout(options.hdu, None, tuple(names), per_band_files=True)


def read_labels_csv(csv_path: Path) -> pd.DataFrame:
    """A catalogue CSV as strings (nothing converted behind the user's back), or one line saying what is wrong."""
    where = str(csv_path)
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{where} is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{where} is not valid CSV: {exc}".splitlines()[0]) from None
    if len(df) == 0:
        raise DataError(f"{where} has a header but no rows")
    df.columns = [c.strip() for c in df.columns]
    return df


def _unique_ids(column: pd.Series, where: str) -> list[str]:
    ids = column.astype(str).str.strip().tolist()
    dup = pd.Series(ids).duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{where} line {i + 2}: duplicate id {ids[i]!r} (first on line {ids.index(ids[i]) + 2})")
    return ids


def labels_of(df: pd.DataFrame, where: str, soft_columns: Sequence[str] = ()) -> tuple[np.ndarray, tuple[str, ...],
                                                                                        np.ndarray | None]:
    """Class indices and names, and vote fractions where ``soft_columns`` name them (else None).

    Hard labels from ``label_name``/``class`` (names) or ``label`` (integers), or both (must agree).
    With vote columns the classes are the columns and each galaxy's label is its plurality class.
    """
    if soft_columns:
        return _soft_labels(df, where, soft_columns)
    labels, names = _hard_labels(df, where)
    return labels, names, None


def _soft_labels(df: pd.DataFrame, where: str, columns: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Per-class vote fractions (or counts, normalised per row); the plurality class is the hard label."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{where} has no column {missing[0]!r} (asked for by --soft-labels; found: {', '.join(df.columns)})")
    if len(columns) < 2:
        raise DataError("--soft-labels needs one column per class, at least two")
    votes = np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64) for c in columns])
    bad = ~np.isfinite(votes).all(axis=1) | (votes < 0).any(axis=1) | (votes.sum(axis=1) <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where} line {i + 2}: vote columns {', '.join(columns)} must be non-negative numbers with a "
                        f"positive sum (found {df.loc[df.index[i], list(columns)].tolist()})")
    fractions = votes / votes.sum(axis=1, keepdims=True)
    return fractions.argmax(axis=1).astype(np.int64), tuple(class_name_of(c) for c in columns), fractions.astype(np.float32)


def class_name_of(column: str) -> str:
    """``p_elliptical`` / ``vote_elliptical`` / ``elliptical_fraction`` / ``elliptical_votes`` → ``elliptical``."""
    for prefix in ("p_", "frac_", "fraction_", "vote_", "votes_"):
        if column.startswith(prefix):
            column = column[len(prefix):]
    for suffix in ("_fraction", "_frac", "_votes", "_count", "_debiased"):
        if column.endswith(suffix):
            column = column[: -len(suffix)]
    return column


def _hard_labels(df: pd.DataFrame, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    cols = set(df.columns)
    label_col = next((c for c in NAME_COLUMNS if c in cols), None) or ("label" if "label" in cols else None)
    if label_col is None:
        raise DataError(f"{where} has no label column: need 'label', 'label_name' or 'class' (found: {', '.join(df.columns)})")
    raw = df[label_col].astype(str).str.strip()
    empty = raw == ""
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{where} line {i + 2}: empty label in column {label_col!r}")
    if label_col == "label":
        as_int = pd.to_numeric(raw, errors="coerce")
        bad = as_int.isna() | (as_int != as_int.round())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{where} line {i + 2}: label {raw.iloc[i]!r} is not an integer (or add a 'label_name' column)")
        codes = as_int.astype(int)
        class_names = tuple(str(c) for c in sorted(codes.unique()))
        return np.array([class_names.index(str(c)) for c in codes], dtype=np.int64), class_names
    if "label" in cols:
        # Integer codes fix the class order (so class 0 stays class 0); names must agree with them.
        pairs = df[["label", label_col]].drop_duplicates()
        clash = pairs[pairs.duplicated(subset=[label_col], keep=False) | pairs.duplicated(subset=["label"], keep=False)]
        if len(clash):
            raise DataError(f"{where}: columns 'label' and {label_col!r} disagree (e.g. {clash.iloc[0].to_dict()})")
        order = pairs.assign(code=pd.to_numeric(pairs["label"], errors="coerce")).sort_values("code")
        class_names = tuple(order[label_col].str.strip())
    else:
        class_names = tuple(sorted(raw.unique()))
    index = {n: k for k, n in enumerate(class_names)}
    return raw.map(index).to_numpy(dtype=np.int64), class_names


def _image_files(df: pd.DataFrame, root: Path, file_col: str | None, ids: list[str], where: str) -> list[str]:
    """Each row's image: the file column (also looked for under images/), else the id plus an image extension."""
    if file_col is not None:
        files = [str(root / f.strip()) for f in df[file_col].astype(str)]
    else:
        files = []
        for i, ident in enumerate(ids):
            candidates = [folder / (ident + e) for folder in (root, root / "images") for e in IMAGE_EXTENSIONS]
            found = next((str(c) for c in candidates if c.exists()), None)
            if found is None:
                raise DataError(f"{where} line {i + 2}: no image file for id {ident!r} (tried {ident}{{{','.join(IMAGE_EXTENSIONS)}}})")
            files.append(found)
    for i, f in enumerate(files):
        if not os.path.isfile(f):
            alt = root / "images" / Path(f).relative_to(root)
            if not alt.is_file():
                raise DataError(f"{where} line {i + 2}: listed image does not exist: {f}")
            files[i] = str(alt)
    return files


def _list_image_folder(root: Path) -> Listing:
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, names = [], [], []
    for d in class_dirs:
        imgs = sorted(str(p) for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if imgs:
            names.append(d.name)
            files += imgs
            labels += [len(names) - 1] * len(imgs)
    if not files:
        raise DataError(f"{root}: no labels.csv and no class sub-folders with images (expected root/<class>/*.jpg)")
    ids = [os.path.relpath(f, root) for f in files]
    return Listing(files, np.array(labels, dtype=np.int64), tuple(names), ids,
                    np.zeros((len(files), 0), np.float32), (), _hash_files(files), "imagefolder")


def _list_hdf5(path: Path) -> Listing:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot read HDF5 file {path}: {exc}") from None
    with fh:
        for key in ("images", "ans"):
            if key not in fh:
                raise DataError(f"{path}: no dataset {key!r} (Galaxy10 layout: 'images' N×H×W×3, 'ans', optional 'redshift'; found: {', '.join(fh.keys())})")
        images = fh["images"][()]
        ans = fh["ans"][()].astype(np.int64).reshape(-1)
        redshift = fh["redshift"][()].astype(np.float64).reshape(-1) if "redshift" in fh else None
        names_attr = fh.attrs.get("class_names")
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    if images.ndim != 4 or images.shape[3] not in (1, 3, 4) or len(images) != len(ans):
        raise DataError(f"{path}: 'images' has shape {images.shape}, 'ans' {ans.shape}; expected N×H×W×3 and N")
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    images = images[..., :3]
    if images.dtype != np.uint8:
        hi = float(images.max()) or 1.0
        images = np.clip(images.astype(np.float64) / hi * 255, 0, 255).astype(np.uint8)
    n_classes = int(ans.max()) + 1
    if names_attr is not None:
        class_names = tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names_attr)
    elif n_classes == 10 and images.shape[1] == 69:
        class_names = GALAXY10_SDSS_NAMES
    elif n_classes == 10 and images.shape[1] == 256:
        class_names = GALAXY10_DECALS_NAMES
    else:
        class_names = tuple(f"class_{k}" for k in range(n_classes))
    if ans.min() < 0 or ans.max() >= len(class_names):
        raise DataError(f"{path}: label {int(ans.max())} outside 0..{len(class_names) - 1}")
    extra_names: tuple[str, ...] = ()
    extras = np.zeros((len(ans), 0), np.float32)
    if redshift is not None:
        bad = ~np.isfinite(redshift)
        if bad.any():
            raise DataError(f"{path}: redshift of image {int(np.flatnonzero(bad)[0])} is not finite")
        extra_names, extras = ("redshift",), redshift[:, None].astype(np.float32)
    h = hashlib.sha256(images.tobytes())
    h.update(ans.tobytes())
    h.update(extras.tobytes())
    return Listing(None, ans, class_names, [str(i) for i in range(len(ans))], extras, extra_names,
                    h.hexdigest(), "galaxy10-hdf5", arrays=images, default_crop=1.0)


def listing_for(path: str | None, extra_columns: Sequence[str] | None, synthetic_n: int, size: int, seed: int,
                options: SourceOptions | None = None) -> Listing:
    options = options or SourceOptions()
    if options.schema is not None and (path is None or path == SYNTHETIC_SOURCE):
        raise DataError("--schema reads vote columns from a labels.csv catalogue: give --data FOLDER")
    if path is None or path == SYNTHETIC_SOURCE:
        from synthesis.data.synthetic import generate_galaxies

        # Rendered straight at the requested size: crop does not apply.
        images, labels, extras, names = generate_galaxies(n=synthetic_n, size=size, seed=seed)
        h = hashlib.sha256(f"synthetic:{synthetic_n}:{size}:{seed}".encode())
        return Listing(None, labels, names, [f"synth{i:05d}" for i in range(len(labels))], extras,
                        ("z", "z_err"), h.hexdigest(), SYNTHETIC_SOURCE, arrays=images, default_crop=1.0)
    p = Path(path)
    if not p.exists():
        raise DataError(f"data not found: {path}")
    if p.is_file():
        if p.suffix.lower() in (".h5", ".hdf5"):
            return _list_hdf5(p)
        raise DataError(f"{path} is a file; expected a folder (with labels.csv or class sub-folders) or a .h5 file")
    if options != SourceOptions() and not (p / "labels.csv").exists():
        raise DataError(f"{path}: --bands, --hdu, --soft-labels, --schema and --keep-columns need a labels.csv catalogue")
    if (p / "labels.csv").exists():
        return _list_csv_folder(p, extra_columns, options)
    if any(f.suffix.lower() == ".csv" for f in p.iterdir()):
        raise DataError(f"{path}: found a CSV but no labels.csv (rename it to labels.csv)")
    return _list_image_folder(p)
