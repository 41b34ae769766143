"""FITS cutouts as survey archives serve them: floating-point fluxes, any number of bands, NaN-masked pixels.

Read with astropy (the field's standard reader; the optional extra ``galaxy-synth[fits]``). A
catalogue row names either one file — a 2-D image (one band) or a 3-D cube (bands × height ×
width, the FITS axis order) — or one file per band (columns ``file_g``, ``file_r``, …). ``hdu``
picks the extension (index or name; default the first with 2-D or 3-D data), ``bands`` which
planes of a cube (indices) or which per-band columns (names). Pixels that are NaN or ±inf (masked,
saturated, off the footprint) are filled with the median of the image's finite pixels in that
band and counted. Every problem names the file in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from galaxy_common import DataError

FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz")
BAND_COLUMN_PREFIX = "file_"  # file_g, file_r, file_z: one file per band


def is_fits(path: str | Path) -> bool:
    name = str(path).lower()
    return any(name.endswith(e) for e in FITS_EXTENSIONS)


def astropy_fits():
    """astropy.io.fits, or one line naming the extra that installs it."""
    try:
        from astropy.io import fits
    except ImportError:
        raise DataError("FITS input needs astropy: pip install 'galaxy-synth[fits]'") from None
    return fits


@dataclass(frozen=True)
class FitsLayout:
    """How a catalogue's FITS files are read: the HDU, and the bands (cube planes, or per-band files)."""

    hdu: str | int | None = None
    bands: tuple[int, ...] | None = None  # cube planes to keep (None: all)
    band_names: tuple[str, ...] = ()  # the names the channels carry (cards, predictions)
    per_band_files: bool = False

    def to_dict(self) -> dict:
        return {"hdu": self.hdu, "bands": list(self.bands) if self.bands is not None else None,
                "band_names": list(self.band_names), "per_band_files": self.per_band_files}

    @classmethod
    def from_dict(cls, data: dict) -> FitsLayout:
        bands = data.get("bands")
        return cls(data.get("hdu"), tuple(bands) if bands is not None else None, tuple(data.get("band_names", ())),
                   bool(data.get("per_band_files")))


def parse_hdu(text: str | None) -> str | int | None:
    if text is None or str(text).strip() == "":
        return None
    return int(text) if str(text).strip().lstrip("-").isdigit() else str(text).strip()


def read_planes(path: str, hdu: str | int | None) -> np.ndarray:
    """The data of one FITS file as float32 [bands, H, W] (a 2-D image is one band)."""
    fits = astropy_fits()
    try:
        with fits.open(path, memmap=False) as hdul:
            if hdu is None:
                unit = next((h for h in hdul if h.data is not None and np.ndim(h.data) in (2, 3)), None)
                if unit is None:
                    raise DataError(f"{path}: no HDU holds a 2-D image or a 3-D band cube")
            else:
                try:
                    unit = hdul[hdu]
                except (KeyError, IndexError):
                    names = ", ".join(f"{i}:{h.name}" for i, h in enumerate(hdul))
                    raise DataError(f"{path}: no HDU {hdu!r} (it has {names}); choose one with --hdu") from None
            data = unit.data
            if data is None or np.ndim(data) not in (2, 3):
                raise DataError(f"{path}: HDU {hdu!r} holds {np.ndim(data) if data is not None else 'no'}-D data; "
                                f"need a 2-D image or a 3-D band cube")
            planes = np.asarray(data, dtype=np.float32)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{path} is not a readable FITS file ({str(exc).splitlines()[0][:120]})") from None
    return planes[None] if planes.ndim == 2 else planes


def fill_missing(planes: np.ndarray, path: str) -> tuple[np.ndarray, int]:
    """NaN/±inf pixels → the band's median finite value; how many there were. An empty band is one line."""
    bad = ~np.isfinite(planes)
    count = int(bad.sum())
    if count:
        planes = planes.copy()
        for b in range(planes.shape[0]):
            finite = planes[b][~bad[b]]
            if finite.size == 0:
                raise DataError(f"{path}: band {b} has no finite pixel (all NaN or inf)")
            planes[b][bad[b]] = float(np.median(finite))
    return planes, count


def crop_resize_planes(planes: np.ndarray, size: int, crop: float) -> np.ndarray:
    """Central ``crop`` of each side, each band resized to ``size``² (bilinear, in float): [size, size, bands]."""
    _, h, w = planes.shape
    side = max(1, int(round(min(h, w) * crop)))
    top, left = (h - side) // 2, (w - side) // 2
    out = np.empty((size, size, planes.shape[0]), dtype=np.float32)
    for b, plane in enumerate(planes):
        img = Image.fromarray(np.ascontiguousarray(plane[top:top + side, left:left + side]), mode="F")
        out[:, :, b] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR) if side != size else img)
    return out


def decode_fits(paths: Sequence[str], layout: FitsLayout, size: int, crop: float) -> tuple[np.ndarray, int]:
    """One catalogue row's image as float32 [size, size, bands] and its count of filled pixels.

    ``paths``: one file (image or cube), or one per band in band order.
    """
    if layout.per_band_files:
        planes_list = [read_planes(p, layout.hdu) for p in paths]
        for p, planes in zip(paths, planes_list):
            if planes.shape[0] != 1:
                raise DataError(f"{p}: a per-band file holds {planes.shape[0]} planes; give one 2-D image per band")
        shapes = {planes.shape[1:] for planes in planes_list}
        if len(shapes) > 1:
            raise DataError(f"{paths[0]}: the band files of one galaxy differ in size ({', '.join(map(str, shapes))})")
        planes = np.concatenate(planes_list)
        where = paths[0]
    else:
        (where,) = paths
        planes = read_planes(where, layout.hdu)
        if layout.bands is not None:
            if max(layout.bands) >= planes.shape[0] or min(layout.bands) < 0:
                raise DataError(f"{where}: holds {planes.shape[0]} band(s); --bands asks for {list(layout.bands)}")
            planes = planes[list(layout.bands)]
    planes, filled = fill_missing(planes, where)
    return crop_resize_planes(planes, size, crop), filled


def decode_fits_chunk(args: tuple) -> np.ndarray | str:
    """Worker-process decoder of one chunk of catalogue rows (a path, or a tuple of per-band paths, each):
    a :class:`FluxChunk`, or a one-line error as a string."""
    paths, size, crop, layout = args
    out, filled = None, 0
    for i, row in enumerate(paths):
        try:
            image, n = decode_fits(row if isinstance(row, (list, tuple)) else [row], layout, size, crop)
        except DataError as exc:
            return str(exc)
        if out is None:
            out = np.empty((len(paths), size, size, image.shape[-1]), dtype=np.float32)
        elif image.shape[-1] != out.shape[-1]:
            return f"{row}: {image.shape[-1]} band(s), but the catalogue's first images have {out.shape[-1]} (a band count that differs)"
        out[i] = image
        filled += n
    return FluxChunk(out, filled)


class FluxChunk:
    """A decoded chunk and how many of its pixels were filled (NaN/inf)."""

    def __init__(self, images: np.ndarray, filled: int) -> None:
        self.images, self.filled = images, filled

    def __len__(self) -> int:
        return len(self.images)


def storage_scale(sample: np.ndarray) -> np.ndarray:
    """Per-band divisors that put fluxes into float16's comfortable range in the cache (an encoding, not the
    mapping a network sees): the 99.9th percentile of |flux| of a first chunk, so most values lie within ±1."""
    flat = np.abs(sample.reshape(-1, sample.shape[-1]).astype(np.float64))
    scale = np.quantile(flat, 0.999, axis=0)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0).astype(np.float32)


def float16_cost_bytes(n_images: int, size: int, bands: int) -> int:
    """Bytes of a float16 cache of ``n_images`` [size, size, bands] (the README quotes it at 100k images)."""
    return int(n_images) * size * size * bands * 2


def band_indices(text: str | None) -> tuple[int, ...] | None:
    """``--bands 0,2,3`` for cube planes (None: all)."""
    if not text:
        return None
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        return None
