"""Ranges a value must lie in, each stated once: the settings check them before anything loads, the
library functions (a user calling ``load_dataset`` directly) check them again with the same words."""

from __future__ import annotations

MIN_IMAGE_SIZE = 8  # 2-4 downsampling stages need at least this many pixels
CROP_RANGE = (0.05, 1.0)


def image_size_problem(size: int | None) -> str | None:
    if size is not None and size < MIN_IMAGE_SIZE:
        return f"--size {size} is too small (need >= {MIN_IMAGE_SIZE})"
    return None


def crop_problem(crop: float | None) -> str | None:
    if crop is not None and not CROP_RANGE[0] <= crop <= CROP_RANGE[1]:
        return f"--crop {crop} must be between {CROP_RANGE[0]:g} and {CROP_RANGE[1]:g}"
    return None
