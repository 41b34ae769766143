"""Decoding one image file: any Pillow mode to uint8 RGB, centre crop, resize; many files in parallel processes, chunk by chunk.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthesis.errors import DataError

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


def decoded_chunks(paths: Sequence[str], size: int, crop: float, workers: int | None, progress: bool):
    """Decoded images in order, a chunk at a time, from worker processes, with a progress bar."""
    from tqdm.auto import tqdm

    if workers is None:
        from synthesis.hardware.cores import allotted_cores

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
