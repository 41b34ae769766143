"""Load galaxy datasets, validate them, preprocess once and cache.

Three input layouts are recognised (see :func:`load_dataset`):

* a folder with ``labels.csv`` (image column ``file``, or ``id`` + an image extension; label
  column ``label_name``/``class``/``label``; optional numeric extra columns such as ``z``);
* an ImageFolder tree ``root/<class>/*.jpg``;
* a Galaxy10 HDF5 file as astroNN distributes it (``images`` N×H×W×3 uint8, ``ans``,
  optional ``redshift``).

With no path, the procedural dataset of :mod:`synthesis.synthetic` is generated.

Images are decoded, centre-cropped and resized once (only the rows the class map keeps, in
parallel processes, streamed to disk chunk by chunk), then cached as one uint8 ``.npy`` file in
``<results>/cache/`` under a key made of the files' content and the preprocessing settings. The
cache is opened memory-mapped and read-only: parallel workers share its pages through the
operating system instead of each holding a decoded copy, and a run copies to its device only
the rows it trains on. Everything the user can get wrong raises
:class:`~synthesis.errors.DataError` with one line naming the file or row.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from synthesis.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
FILE_COLUMNS = ("file", "filename", "image", "path")
NAME_COLUMNS = ("label_name", "class", "class_name")
DEFAULT_EXTRA_COLUMNS = ("z", "z_err", "redshift", "redshift_err")
CACHE_VERSION = 1
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


@dataclass
class GalaxyImages:
    """A preprocessed dataset: everything downstream (splits, trials, export) reads this."""

    images: np.ndarray  # uint8 [N, H, W, 3], usually a read-only memory map of the cache file
    labels: np.ndarray  # int64 [N], indices into class_names
    class_names: tuple[str, ...]
    ids: list[str]
    extras: np.ndarray  # float32 [N, K]; K may be 0
    extra_names: tuple[str, ...] = ()
    source: str = SYNTHETIC_SOURCE
    fingerprint: str = ""  # content + preprocessing + class map: identifies the exact data
    crop: float = 1.0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}


@dataclass(frozen=True)
class ClassMap:
    """Merge and drop classes by name: ``merge={'spiral_cw': 'spiral', 'spiral_acw': 'spiral'}``."""

    merge: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()

    @classmethod
    def parse(cls, merges: Sequence[str] = (), drops: Sequence[str] = ()) -> ClassMap:
        """Parse CLI strings: ``--merge spiral_cw,spiral_acw=spiral`` and ``--drop dont_know``."""
        mapping: dict[str, str] = {}
        for item in merges:
            if "=" not in item:
                raise DataError(f"--merge {item!r}: expected OLD1,OLD2=NEW (e.g. spiral_cw,spiral_acw=spiral)")
            olds, new = item.split("=", 1)
            for old in olds.split(","):
                if old.strip():
                    mapping[old.strip()] = new.strip()
        dropped = tuple(d.strip() for item in drops for d in item.split(",") if d.strip())
        return cls(merge=mapping, drop=dropped)

    def to_dict(self) -> dict:
        return {"merge": dict(sorted(self.merge.items())), "drop": sorted(self.drop)}

    def apply(self, labels: np.ndarray, class_names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
        """Return ``(new_labels, new_class_names, keep_mask)``; unknown names are an error."""
        known = set(class_names)
        for name in list(self.merge) + list(self.drop):
            if name not in known:
                raise DataError(f"class map names unknown class {name!r} (classes: {', '.join(class_names)})")
        renamed = [self.merge.get(n, n) for n in class_names]
        new_names: list[str] = []
        for old, new in zip(class_names, renamed):
            if old not in self.drop and new not in new_names:
                new_names.append(new)
        lookup = np.array([-1 if old in self.drop else new_names.index(new) for old, new in zip(class_names, renamed)])
        mapped = lookup[labels]
        keep = mapped >= 0
        return mapped[keep].astype(np.int64), tuple(new_names), keep


# ---------------------------------------------------------------------------------------------
# Decoding one image (runs in worker processes)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode → uint8 RGB. 16-bit and float images are scaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        gray = np.clip(arr, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, LA, P, RGBA (alpha dropped), CMYK, YCbCr
    arr = np.asarray(img)
    if arr.dtype != np.uint8:  # e.g. 16-bit-per-channel PNG
        arr = (arr.astype(np.float64) / (np.iinfo(arr.dtype).max / 255.0)).astype(np.uint8)
    return arr


def centre_crop_resize(arr: np.ndarray, size: int, crop: float) -> np.ndarray:
    """Keep the central ``crop`` fraction of each side, resize to ``size``² (antialiased)."""
    h, w = arr.shape[:2]
    side = max(1, int(round(min(h, w) * crop)))
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(np.ascontiguousarray(arr[top : top + side, left : left + side]))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_image(path: str, size: int, crop: float) -> np.ndarray:
    """Decode, convert to RGB, centre-crop and resize one file. Raises DataError naming it."""
    try:
        with Image.open(path) as img:
            if img.format == "JPEG" and img.mode in ("RGB", "L"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves enough pixels.
                need = int(math.ceil(size / crop))
                img.draft(img.mode, (need, need))
            img.load()
            arr = _to_rgb_array(img)
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt or unreadable image {path}: {exc}") from None
    return centre_crop_resize(arr, size, crop)


def _decode_chunk(args: tuple[list[str], int, float]) -> np.ndarray | str:
    paths, size, crop = args
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            out[i] = decode_image(p, size, crop)
        except DataError as exc:
            return str(exc)  # exceptions with custom types pickle poorly across processes
    return out


def _decoded_chunks(paths: Sequence[str], size: int, crop: float, workers: int | None, progress: bool):
    """Decoded images in order, a chunk at a time, from worker processes, with a progress bar."""
    from tqdm.auto import tqdm

    if workers is None:
        from synthesis.cores import allotted_cores

        workers = allotted_cores().cores  # the cores this process may use, not the machine's
    chunk = 64
    jobs = [(list(paths[i : i + chunk]), size, crop) for i in range(0, len(paths), chunk)]
    bar = tqdm(total=len(paths), desc="decoding images", unit="img", disable=not progress, leave=False)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and len(jobs) > 1 else None
    try:
        for res in (pool.map(_decode_chunk, jobs) if pool is not None else map(_decode_chunk, jobs)):
            if isinstance(res, str):
                raise DataError(res)
            bar.update(len(res))
            yield res
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def decode_images(paths: Sequence[str], size: int, crop: float, workers: int | None = None, progress: bool = True) -> np.ndarray:
    """Decode many files in parallel (processes) into one in-memory array."""
    chunks = list(_decoded_chunks(paths, size, crop, workers, progress))
    return np.concatenate(chunks) if chunks else np.empty((0, size, size, 3), dtype=np.uint8)


def _write_npy_stream(path: Path, shape: tuple[int, ...], chunks) -> None:
    """Write a uint8 .npy file chunk by chunk: memory stays at one chunk, whatever the data set's size."""
    from proxies.atomic_io import atomic_path

    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                   "fortran_order": False, "shape": shape})
        for chunk in chunks:
            fh.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())
            written += len(chunk)
        if written != shape[0]:
            raise DataError(f"decoded {written} images, expected {shape[0]}")


# ---------------------------------------------------------------------------------------------
# Listing a source: which files, which labels, which extra columns


@dataclass
class _Listing:
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


def _hash_files(paths: Sequence[str], extra: bytes = b"") -> str:
    h = hashlib.sha256(extra)
    for p in paths:
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


def _list_csv_folder(root: Path, extra_columns: Sequence[str] | None) -> _Listing:
    csv_path = root / "labels.csv"
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
    cols = set(df.columns)

    file_col = next((c for c in FILE_COLUMNS if c in cols), None)
    if file_col is None and "id" not in cols:
        raise DataError(f"{where} has no image column: need one of {FILE_COLUMNS} or 'id' (found: {', '.join(df.columns)})")
    name_col = next((c for c in NAME_COLUMNS if c in cols), None)
    label_col = name_col or ("label" if "label" in cols else None)
    if label_col is None:
        raise DataError(f"{where} has no label column: need 'label', 'label_name' or 'class' (found: {', '.join(df.columns)})")

    ids = (df["id"] if "id" in cols else df[file_col]).astype(str).str.strip().tolist()
    dup = pd.Series(ids).duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        first = ids.index(ids[i])
        raise DataError(f"{where} line {i + 2}: duplicate id {ids[i]!r} (first on line {first + 2})")

    raw_labels = df[label_col].astype(str).str.strip()
    empty = raw_labels == ""
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{where} line {i + 2}: empty label in column {label_col!r}")
    if label_col == "label":
        as_int = pd.to_numeric(raw_labels, errors="coerce")
        bad = as_int.isna() | (as_int != as_int.round())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{where} line {i + 2}: label {raw_labels.iloc[i]!r} is not an integer (or add a 'label_name' column)")
        codes = as_int.astype(int)
        class_names = tuple(str(c) for c in sorted(codes.unique()))
        labels = np.array([class_names.index(str(c)) for c in codes], dtype=np.int64)
    else:
        if "label" in cols:
            # Integer codes fix the class order (so class 0 stays class 0); names must agree with them.
            pairs = df[["label", label_col]].drop_duplicates()
            clash = pairs[pairs.duplicated(subset=[label_col], keep=False) | pairs.duplicated(subset=["label"], keep=False)]
            if len(clash):
                raise DataError(f"{where}: columns 'label' and {label_col!r} disagree (e.g. {clash.iloc[0].to_dict()})")
            order = pairs.assign(code=pd.to_numeric(pairs["label"], errors="coerce")).sort_values("code")
            class_names = tuple(order[label_col].str.strip())
        else:
            class_names = tuple(sorted(raw_labels.unique()))
        index = {n: k for k, n in enumerate(class_names)}
        labels = raw_labels.map(index).to_numpy(dtype=np.int64)

    if file_col is not None:
        files = [str(root / f.strip()) for f in df[file_col].astype(str)]
    else:
        files = []
        for i, ident in enumerate(ids):
            found = next((str(root / (ident + e)) for e in IMAGE_EXTENSIONS if (root / (ident + e)).exists()), None)
            if found is None:
                found = next((str(root / "images" / (ident + e)) for e in IMAGE_EXTENSIONS if (root / "images" / (ident + e)).exists()), None)
            if found is None:
                raise DataError(f"{where} line {i + 2}: no image file for id {ident!r} (tried {ident}{{{','.join(IMAGE_EXTENSIONS)}}})")
            files.append(found)
    for i, f in enumerate(files):
        if not os.path.isfile(f):
            alt = root / "images" / Path(f).relative_to(root)
            if alt.is_file():
                files[i] = str(alt)
            else:
                raise DataError(f"{where} line {i + 2}: listed image does not exist: {f}")

    if extra_columns is None:
        extra_names = tuple(c for c in DEFAULT_EXTRA_COLUMNS if c in cols)
    else:
        missing = [c for c in extra_columns if c not in cols]
        if missing:
            raise DataError(f"{where} has no column {missing[0]!r} (asked for by --extra-columns; found: {', '.join(df.columns)})")
        extra_names = tuple(extra_columns)
    extras = _check_extras(df, extra_names, where)
    content = _hash_files(files, csv_path.read_bytes())
    return _Listing(files, labels, class_names, ids, extras, extra_names, content, "csv")


def _list_image_folder(root: Path) -> _Listing:
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
    return _Listing(files, np.array(labels, dtype=np.int64), tuple(names), ids,
                    np.zeros((len(files), 0), np.float32), (), _hash_files(files), "imagefolder")


def _list_hdf5(path: Path) -> _Listing:
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
    return _Listing(None, ans, class_names, [str(i) for i in range(len(ans))], extras, extra_names,
                    h.hexdigest(), "galaxy10-hdf5", arrays=images, default_crop=1.0)


def _listing_for(path: str | None, extra_columns: Sequence[str] | None, synthetic_n: int, size: int, seed: int) -> _Listing:
    if path is None or path == SYNTHETIC_SOURCE:
        from synthesis.synthetic import generate_galaxies

        # Rendered straight at the requested size: crop does not apply.
        images, labels, extras, names = generate_galaxies(n=synthetic_n, size=size, seed=seed)
        h = hashlib.sha256(f"synthetic:{synthetic_n}:{size}:{seed}".encode())
        return _Listing(None, labels, names, [f"synth{i:05d}" for i in range(len(labels))], extras,
                        ("z", "z_err"), h.hexdigest(), SYNTHETIC_SOURCE, arrays=images, default_crop=1.0)
    p = Path(path)
    if not p.exists():
        raise DataError(f"data not found: {path}")
    if p.is_file():
        if p.suffix.lower() in (".h5", ".hdf5"):
            return _list_hdf5(p)
        raise DataError(f"{path} is a file; expected a folder (with labels.csv or class sub-folders) or a .h5 file")
    if (p / "labels.csv").exists():
        return _list_csv_folder(p, extra_columns)
    if any(f.suffix.lower() == ".csv" for f in p.iterdir()):
        raise DataError(f"{path}: found a CSV but no labels.csv (rename it to labels.csv)")
    return _list_image_folder(p)


def _validate_classes(labels: np.ndarray, class_names: Sequence[str], min_per_class: int, where: str) -> None:
    counts = np.bincount(labels, minlength=len(class_names))
    present = [n for n, c in zip(class_names, counts) if c > 0]
    if len(present) < 2:
        raise DataError(f"{where}: need at least 2 classes, found {len(present)} ({', '.join(present) or 'none'})")
    for name, c in zip(class_names, counts):
        if 0 < c < min_per_class:
            raise DataError(
                f"{where}: class {name!r} has {c} image(s); need at least {min_per_class} to split "
                f"into train/val/test (drop it with --drop {name} or merge it with --merge)"
            )


def _open_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached images, memory-mapped read-only; None when absent, damaged or of another shape."""
    if not path.is_file():
        return None
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    return images if images.shape == shape and images.dtype == np.uint8 else None


def _writable_cache(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the image cache folder {folder}: {exc.strerror} (choose another --results)") from None
    if not os.access(folder, os.W_OK):
        raise DataError(f"the image cache folder {folder} is read-only (choose another --results)")
    return folder


def load_dataset(
    path: str | None = None,
    size: int = 64,
    crop: float | None = None,
    class_map: ClassMap | None = None,
    cache_dir: str | os.PathLike | None = None,
    extra_columns: Sequence[str] | None = None,
    synthetic_n: int = 3000,
    synthetic_seed: int = 0,
    min_per_class: int = 5,
    progress: bool = True,
) -> GalaxyImages:
    """Load, validate, preprocess (cached) and class-map a dataset. See the module docstring.

    ``crop=None`` picks the source's default: 0.5 for image folders (galaxies are small in SDSS
    cutouts), 1.0 for HDF5 and the synthetic set (already framed).
    """
    if size < 8:
        raise DataError(f"--size {size} is too small (need >= 8)")
    if crop is not None and not 0.05 <= crop <= 1.0:
        raise DataError(f"--crop {crop} must be between 0.05 and 1")
    listing = _listing_for(path, extra_columns, synthetic_n, size, synthetic_seed)
    crop = listing.default_crop if crop is None else crop
    class_map = class_map or ClassMap()
    where = path or SYNTHETIC_SOURCE

    labels, class_names, keep = class_map.apply(listing.labels, listing.class_names)
    _validate_classes(labels, class_names, min_per_class, where)

    key_src = json.dumps({"v": CACHE_VERSION, "content": listing.content_hash, "size": size, "crop": crop})
    # The file holds only the rows the class map keeps, so its name includes the class map too.
    key = hashlib.sha256(f"{key_src}|{json.dumps(class_map.to_dict())}".encode()).hexdigest()[:20]
    shape = (int(keep.sum()), size, size, 3)
    images = _open_cache(Path(cache_dir) / f"{listing.kind}-{size}px-{key}.npy", shape) if cache_dir else None
    if images is None:
        if listing.arrays is not None:
            arrays = listing.arrays[keep]
            chunks = (arrays[i:i + 256] if arrays.shape[1:3] == (size, size) and crop == 1.0
                      else np.stack([centre_crop_resize(a, size, crop) for a in arrays[i:i + 256]])
                      for i in range(0, len(arrays), 256))
        else:
            chunks = _decoded_chunks([f for f, k in zip(listing.files or [], keep) if k], size, crop, None, progress)
        if cache_dir is None:
            images = np.concatenate(list(chunks)) if shape[0] else np.empty(shape, np.uint8)
        else:
            cache_file = _writable_cache(Path(cache_dir)) / f"{listing.kind}-{size}px-{key}.npy"
            _write_npy_stream(cache_file, shape, chunks)  # atomic: a killed run never leaves half a cache
            images = _open_cache(cache_file, shape)
            if images is None:
                raise DataError(f"the image cache {cache_file} could not be read back")

    fingerprint = hashlib.sha256(f"{key_src}|{json.dumps(class_map.to_dict())}|{listing.extra_names}".encode()).hexdigest()[:16]
    return GalaxyImages(
        images=images,
        labels=labels,
        class_names=class_names,
        ids=[i for i, k in zip(listing.ids, keep) if k],
        extras=listing.extras[keep],
        extra_names=listing.extra_names,
        source=listing.kind if path is None else str(path),
        fingerprint=fingerprint,
        crop=crop,
    )


# ---------------------------------------------------------------------------------------------
# Chirality: which classes are mirror images of each other

_MIRROR_PATTERNS = [("_cw", "_acw"), ("_cw", "_ccw"), ("_clockwise", "_anticlockwise"), ("_clockwise", "_counterclockwise"), ("cw", "acw")]


def find_mirror_pairs(class_names: Sequence[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Detect mirror-image class pairs by name (``spiral_cw``/``spiral_acw`` etc.).

    Returns ``(pairs, unpaired_chiral)``: index pairs whose labels a flip must swap, and names
    that look chiral but have no partner (then flips must be disabled altogether).
    """
    names = list(class_names)
    pairs: list[tuple[int, int]] = []
    paired: set[int] = set()
    for a_suffix, b_suffix in _MIRROR_PATTERNS:
        for i, name in enumerate(names):
            if i in paired or not name.endswith(a_suffix) or name.endswith(b_suffix):
                continue
            partner = name[: len(name) - len(a_suffix)] + b_suffix
            if partner in names and names.index(partner) not in paired:
                j = names.index(partner)
                pairs.append((i, j))
                paired |= {i, j}
    chiral = re.compile(r"(^|_)(a?cw|ccw|clockwise|anticlockwise|counterclockwise)$")
    unpaired = [n for k, n in enumerate(names) if k not in paired and chiral.search(n)]
    return pairs, unpaired
