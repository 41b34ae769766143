"""Decoding one image file: any Pillow mode to uint8 RGB, centre crop, resize; many files in parallel processes, chunk by chunk.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthesis import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")  # what Pillow reads; one list


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


def decoded_chunks(paths: Sequence, size: int, crop: float, workers: int | None, progress: bool,
                   decode_chunk: Callable[[tuple], Any] = _decode_chunk, extra: tuple = ()):
    """Decoded images in order, a chunk at a time, from worker processes, with a progress bar.

    ``decode_chunk((paths, size, crop, *extra))`` decodes one chunk (8-bit images by default; FITS
    cutouts pass :func:`synthesis.data.fits.decode_fits_chunk`) and returns the array, or a one-line
    error as a string (exceptions of our own types pickle poorly across processes).
    """
    from tqdm.auto import tqdm

    if workers is None:
        from synthesis.hardware import allotted_cores

        workers = allotted_cores().cores  # the cores this process may use, not the machine's
    chunk = 64
    jobs = [(list(paths[i : i + chunk]), size, crop, *extra) for i in range(0, len(paths), chunk)]
    bar = tqdm(total=len(paths), desc="decoding images", unit="img", disable=not progress, leave=False)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and len(jobs) > 1 else None
    try:
        for res in (pool.map(decode_chunk, jobs) if pool is not None else map(decode_chunk, jobs)):
            if isinstance(res, str):
                raise DataError(res)
            bar.update(len(res))
            yield res
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def decode_rows(args: tuple) -> tuple[np.ndarray, list[str]]:
    """Worker-process decoder for inference: rows (a path, or per-band paths) → model inputs and a status per row.

    ``args = (rows, size, crop, fits_layout_dict or None)``. 8-bit images come back as uint8
    [N, S, S, 3], FITS as float32 raw fluxes [N, S, S, bands]; a row that cannot be read is zeros
    and its one-line reason (``"ok"`` otherwise), so one bad file costs its row, not the catalogue.
    Imports no torch: a pool of these stays small in memory.
    """
    rows, size, crop, layout = args
    status = ["ok"] * len(rows)
    if layout is None:
        out = np.zeros((len(rows), size, size, 3), np.uint8)
        for i, row in enumerate(rows):
            try:
                out[i] = decode_image(row[0], size, crop)
            except DataError as exc:
                status[i] = f"error: {exc}"
        return out, status
    from synthesis.data.fits import FitsLayout, decode_fits

    fits_layout = FitsLayout.from_dict(layout)
    images = []
    for i, row in enumerate(rows):
        try:
            images.append(decode_fits(list(row), fits_layout, size, crop)[0])
        except DataError as exc:
            status[i] = f"error: {exc}"
            images.append(None)
    bands = next((im.shape[-1] for im in images if im is not None), len(fits_layout.band_names) or 1)
    out = np.zeros((len(rows), size, size, bands), np.float32)
    for i, im in enumerate(images):
        if im is not None and im.shape[-1] == bands:
            out[i] = im
        elif im is not None:
            status[i] = f"error: {row[0]}: {im.shape[-1]} band(s), the model takes {bands}"
    return out, status
