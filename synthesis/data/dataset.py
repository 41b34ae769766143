"""A preprocessed data set (GalaxyImages) and the one way to make one: list, class-map, validate, decode once into the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from galaxy_common import atomic_path
from synthesis.data.cache import (
    CACHE_VERSION,
    open_cache,
    writable_cache,
    write_npy_stream,
)
from synthesis.data.decode import centre_crop_resize, decoded_chunks
from synthesis.data.fits import (
    FitsLayout,
    decode_fits,
    decode_fits_chunk,
    storage_scale,
)
from synthesis.data.sources import SYNTHETIC_SOURCE, Listing, SourceOptions, listing_for
from synthesis import DataError
from synthesis import crop_problem, image_size_problem

log = logging.getLogger("galaxy_synth")


@dataclass
class GalaxyImages:
    """A preprocessed dataset: everything downstream (splits, trials, export) reads this."""

    images: np.ndarray  # uint8 [N, H, W, C] (8-bit images) or float16 (FITS fluxes / storage), memory-mapped
    labels: np.ndarray  # int64 [N], indices into class_names
    class_names: tuple[str, ...]
    ids: list[str]
    extras: np.ndarray  # float32 [N, K]; K may be 0
    extra_names: tuple[str, ...] = ()
    source: str = SYNTHETIC_SOURCE
    fingerprint: str = ""  # content + preprocessing + class map: identifies the exact data
    crop: float = 1.0
    cache_file: str | None = None  # the cache it was read from (a reopened study goes straight there)
    channels: tuple[str, ...] = ("R", "G", "B")
    storage: tuple[float, ...] | None = None  # float16 cache: per-band divisor of the stored fluxes
    fits: dict | None = None  # FitsLayout.to_dict() of FITS cutouts
    soft: np.ndarray | None = None  # vote fractions [N, classes] (--soft-labels), else None
    votes: np.ndarray | None = None  # vote counts [N, answers] (--schema), else None
    schema: dict | None = None  # QuestionSchema.to_dict() of --schema
    catalogue: dict[str, list[str]] = field(default_factory=dict)  # columns carried through (id, ra, dec…)

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


def validate_classes(labels: np.ndarray, class_names: Sequence[str], min_per_class: int, where: str) -> None:
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
    options: SourceOptions | None = None,
) -> GalaxyImages:
    """Load, validate, preprocess (cached) and class-map a dataset. See the module docstring.

    ``crop=None`` picks the source's default: 0.5 for image folders (galaxies are small in SDSS
    cutouts), 1.0 for HDF5 and the synthetic set (already framed). ``options``: FITS bands and HDU,
    vote-fraction columns, catalogue columns to carry (:class:`synthesis.data.sources.SourceOptions`).
    """
    problem = image_size_problem(size) or crop_problem(crop)
    if problem:
        raise DataError(problem)
    listing = listing_for(path, extra_columns, synthetic_n, size, synthetic_seed, options)
    crop = listing.default_crop if crop is None else crop
    class_map = class_map or ClassMap()
    where = path or SYNTHETIC_SOURCE

    labels, class_names, keep = class_map.apply(listing.labels, listing.class_names)
    if (listing.soft is not None or listing.votes is not None) and (class_map.merge or class_map.drop):
        raise DataError(f"--merge/--drop with {'--schema' if listing.votes is not None else '--soft-labels'}: add the vote "
                        "columns up in the catalogue instead")
    validate_classes(labels, class_names, min_per_class, where)

    key_src = json.dumps({"v": CACHE_VERSION, "content": listing.content_hash, "size": size, "crop": crop})
    # The file holds only the rows the class map keeps, so its name includes the class map too.
    key = hashlib.sha256(f"{key_src}|{json.dumps(class_map.to_dict())}".encode()).hexdigest()[:20]
    cache_file = Path(cache_dir) / f"{listing.kind}-{size}px-{key}.npy" if cache_dir else None
    images, storage = _cached_pixels(listing, keep, size, crop, cache_file, progress, where)
    fingerprint = hashlib.sha256(f"{key_src}|{json.dumps(class_map.to_dict())}|{listing.extra_names}".encode()).hexdigest()[:16]
    layout = listing.fits
    data = GalaxyImages(
        images=images, labels=labels, class_names=class_names,
        ids=[i for i, k in zip(listing.ids, keep) if k],
        extras=listing.extras[keep],
        extra_names=listing.extra_names,
        source=listing.kind if path is None else str(path),
        fingerprint=fingerprint,
        crop=crop,
        channels=_channel_names(layout, images.shape[-1]),
        storage=storage,
        fits=layout.to_dict() if layout is not None else None,
        soft=_kept(listing.soft, keep), votes=_kept(listing.votes, keep),
        schema=options.schema.to_dict() if options is not None and options.schema is not None else None,
        catalogue={k: [v for v, kept in zip(values, keep) if kept] for k, values in (listing.catalogue or {}).items()},
    )
    if cache_file is not None:
        data.cache_file = str(cache_file)
        write_rows(data)
    return data


def _kept(rows: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    return rows[keep] if rows is not None else None


def _cached_pixels(listing: Listing, keep: np.ndarray, size: int, crop: float, cache_file: Path | None, progress: bool,
                   where: str) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """The kept rows' pixels, decoded once into the cache: 8-bit images, or FITS fluxes as float16 with their storage scale."""
    if listing.fits is None:
        return _decoded_once(listing, keep, size, crop, cache_file, progress), None
    images, storage, filled = _decoded_fluxes(listing, keep, size, crop, cache_file, progress)
    if filled:
        log.warning("filled %d NaN/inf pixel(s) with their band's median (%s)", filled, where)
    return images, storage


def _channel_names(layout: FitsLayout | None, channels: int) -> tuple[str, ...]:
    if layout is None:
        return ("R", "G", "B")[:channels]
    return layout.band_names or tuple(f"band{b}" for b in range(channels))


def _decoded_fluxes(listing: Listing, keep: np.ndarray, size: int, crop: float, cache_file: Path | None,
                    progress: bool) -> tuple[np.ndarray, tuple[float, ...], int]:
    """FITS fluxes of the kept rows as float16 (divided per band by a storage scale fitted on the first chunk)."""
    rows = [f for f, k in zip(listing.files or [], keep) if k]
    first, _ = decode_fits(list(rows[0]) if isinstance(rows[0], tuple) else [rows[0]], listing.fits, size, crop)
    shape = (len(rows), size, size, first.shape[-1])
    if cache_file is not None:
        images = open_cache(cache_file, shape, np.float16)
        stored = _stored_meta(cache_file)
        if images is not None and stored.get("storage"):
            return images, tuple(stored["storage"]), 0
    chunks = decoded_chunks(rows, size, crop, None, progress, decode_fits_chunk, (listing.fits,))
    state: dict = {"filled": 0}

    def encoded():
        for chunk in chunks:
            if "storage" not in state:
                state["storage"] = storage_scale(chunk.images)
            if chunk.images.shape[-1] != shape[-1]:
                raise DataError(f"the catalogue's images differ in band count ({chunk.images.shape[-1]} vs {shape[-1]})")
            state["filled"] += chunk.filled
            yield (chunk.images / state["storage"]).astype(np.float16)

    if cache_file is None:
        images = np.concatenate(list(encoded()))
    else:
        writable_cache(cache_file.parent)
        write_npy_stream(cache_file, shape, encoded(), np.float16)
        images = open_cache(cache_file, shape, np.float16)
        _rows_path(cache_file).unlink(missing_ok=True)  # rows of an older cache no longer describe it
    return images, tuple(float(v) for v in state["storage"]), state["filled"]


def _decoded_once(listing: Listing, keep: np.ndarray, size: int, crop: float, cache_file: Path | None,
                  progress: bool) -> np.ndarray:
    """The kept rows' pixels: from the cache file when it is there, else decoded (streamed into it, atomically)."""
    shape = (int(keep.sum()), size, size, 3)
    images = open_cache(cache_file, shape) if cache_file is not None else None
    if images is not None:
        return images
    if listing.arrays is not None:
        arrays = listing.arrays[keep]
        chunks = (arrays[i:i + 256] if arrays.shape[1:3] == (size, size) and crop == 1.0
                  else np.stack([centre_crop_resize(a, size, crop) for a in arrays[i:i + 256]])
                  for i in range(0, len(arrays), 256))
    else:
        chunks = decoded_chunks([f for f, k in zip(listing.files or [], keep) if k], size, crop, None, progress)
    if cache_file is None:
        return np.concatenate(list(chunks)) if shape[0] else np.empty(shape, np.uint8)
    writable_cache(cache_file.parent)
    write_npy_stream(cache_file, shape, chunks)  # atomic: a killed run never leaves half a cache
    images = open_cache(cache_file, shape)
    if images is None:
        raise DataError(f"the image cache {cache_file} could not be read back")
    return images


def _rows_path(cache_file: str | Path) -> Path:
    return Path(str(cache_file)[: -len(".npy")] + ".rows.npz")


def write_rows(data: GalaxyImages) -> None:
    """Beside the cached pixels, everything else a reopened study needs (labels, ids, extras, names), so that
    rank, correlate, export and report open the cache without listing, hashing or decoding the source."""
    target = _rows_path(data.cache_file)
    if target.is_file():
        return
    meta = {"class_names": list(data.class_names), "extra_names": list(data.extra_names), "source": data.source,
            "fingerprint": data.fingerprint, "crop": data.crop, "channels": list(data.channels),
            "storage": list(data.storage) if data.storage else None, "fits": data.fits, "catalogue": data.catalogue,
            **({"schema": data.schema} if data.schema else {})}
    soft = {k: v for k, v in (("soft", data.soft), ("votes", data.votes)) if v is not None}
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, labels=data.labels, ids=np.asarray(data.ids, dtype=str), extras=data.extras,
                     meta=np.asarray(json.dumps(meta)), **soft)
    except OSError:
        pass  # a cache folder that cannot take it only makes later reopening slower


def open_cached(cache_file: str | Path, fingerprint: str) -> GalaxyImages | None:
    """The data set of a cache file and its rows, if both are there and carry this fingerprint (else None)."""
    rows_file = _rows_path(cache_file)
    if not Path(cache_file).is_file() or not rows_file.is_file():
        return None
    try:
        with np.load(rows_file, allow_pickle=False) as rows:
            meta = json.loads(str(rows["meta"]))
            labels, ids, extras = rows["labels"], rows["ids"].tolist(), rows["extras"]
            soft = rows["soft"] if "soft" in rows.files else None
            votes = rows["votes"] if "votes" in rows.files else None
    except (OSError, ValueError, KeyError):
        return None
    if meta["fingerprint"] != fingerprint:
        return None
    images = np.load(cache_file, mmap_mode="r", allow_pickle=False)
    if images.shape[0] != len(labels):
        return None
    return GalaxyImages(images=images, labels=labels, class_names=tuple(meta["class_names"]), ids=ids, extras=extras,
                        extra_names=tuple(meta["extra_names"]), source=meta["source"], fingerprint=fingerprint,
                        crop=float(meta["crop"]), cache_file=str(cache_file),
                        channels=tuple(meta.get("channels") or ("R", "G", "B")[: images.shape[-1]]),
                        storage=tuple(meta["storage"]) if meta.get("storage") else None, fits=meta.get("fits"),
                        soft=soft, votes=votes, schema=meta.get("schema"), catalogue=meta.get("catalogue") or {})


def _stored_meta(cache_file: Path) -> dict:
    """The rows file's meta of a cache (empty when there is none)."""
    try:
        with np.load(_rows_path(cache_file), allow_pickle=False) as rows:
            return json.loads(str(rows["meta"]))
    except (OSError, ValueError, KeyError):
        return {}
