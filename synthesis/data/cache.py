"""The decoded-image cache: one .npy file per data set and preprocessing, streamed to disk, opened memory-mapped and read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from synthesis import DataError

CACHE_VERSION = 1


def write_npy_stream(path: Path, shape: tuple[int, ...], chunks, dtype: np.dtype | type = np.uint8) -> None:
    """Write a .npy file chunk by chunk: memory stays at one chunk, whatever the data set's size.

    ``dtype``: uint8 for 8-bit images, float16 for FITS fluxes (half the bytes of float32; 100k 64 px
    images in 5 bands are 3.9 GiB)."""
    from galaxy_common import atomic_path

    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                   "fortran_order": False, "shape": shape})
        for chunk in chunks:
            fh.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
            written += len(chunk)
        if written != shape[0]:
            raise DataError(f"decoded {written} images, expected {shape[0]}")


def open_cache(path: Path, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> np.ndarray | None:
    """The cached images, memory-mapped read-only; None when absent, damaged or of another shape or type."""
    if not path.is_file():
        return None
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    return images if images.shape == shape and images.dtype == np.dtype(dtype) else None


def writable_cache(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the image cache folder {folder}: {exc.strerror} (choose another --results)") from None
    if not os.access(folder, os.W_OK):
        raise DataError(f"the image cache folder {folder} is read-only (choose another --results)")
    return folder
