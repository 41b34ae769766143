"""Are these images like the training images? A few image statistics, compared with the training set's.

Export stores, over the training images, the mean and standard deviation of a handful of
statistics per image, in the model's input units before standardisation ([0, 1] for 8-bit images,
the band mapping's units for FITS): per band the mean, the pixel std, the sky (median of the
border ring) and the concentration ((centre − sky) / (|mean − sky| + std)), and the colour of each
pair of adjacent bands. For an image, ``domain_z`` is the root-mean-square of its statistics' z
against the training distribution (≈ 0.6 for training images). For a chunk, the *shift* is the
largest |mean z| of any statistic (an effect size, Cohen's d): measured 0.07 for unseen procedural
galaxies against a procedural training set, 1.5–2.4 for real SDSS cutouts (docs/BENCHMARKS.md
§20); predict warns once, naming the statistic, when a chunk's shift exceeds
:data:`DOMAIN_SHIFT_WARNING`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthesis.data import cached_to_units

DOMAIN_SHIFT_WARNING = 0.5  # a "medium" effect size: half a training SD on average over a chunk


def image_statistics(units: np.ndarray, channel_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Per image [N, F] statistics of images [N, H, W, C] in input units, and their names."""
    n, h, w, c = units.shape
    b, q = max(1, h // 8), max(1, h // 4)
    # Pixels last and contiguous ([N, C, H, W]): numpy's reductions over (H, W) of an [N, H, W, C] array
    # were 6× slower, and predict computes these for every catalogue image (docs/BENCHMARKS.md §20).
    planes = np.ascontiguousarray(units.transpose(0, 3, 1, 2), dtype=np.float32)
    flat = planes.reshape(n, c, h * w)
    mean, std = flat.mean(axis=-1, dtype=np.float64), flat.std(axis=-1, dtype=np.float64)
    border = np.concatenate([planes[:, :, :b].reshape(n, c, -1), planes[:, :, -b:].reshape(n, c, -1),
                             planes[:, :, :, :b].reshape(n, c, -1), planes[:, :, :, -b:].reshape(n, c, -1)], axis=-1)
    sky = np.median(border, axis=-1).astype(np.float64)
    cy, cx = h // 2, w // 2
    centre = planes[:, :, cy - q // 2:cy + q // 2 + 1, cx - q // 2:cx + q // 2 + 1].reshape(n, c, -1).mean(axis=-1, dtype=np.float64)
    concentration = (centre - sky) / (np.abs(mean - sky) + std + 1e-6)
    columns = [mean, std, sky, concentration]
    names = [f"{stat} {band}" for stat in ("mean", "std", "sky", "concentration") for band in channel_names]
    if c > 1:
        columns.append(mean[:, :-1] - mean[:, 1:])
        names += [f"colour {a}-{z}" for a, z in zip(channel_names[:-1], channel_names[1:])]
    return np.concatenate(columns, axis=1), names


def _units(loaded: Any, images: np.ndarray) -> np.ndarray:
    mapping = loaded.config.band_mapping
    if not mapping:
        return images
    from synthesis.data import BandMapping

    return BandMapping.from_dict(mapping).numpy(images)


def _z(loaded: Any, images: np.ndarray) -> np.ndarray | None:
    domain = loaded.card["input"].get("domain")
    if not domain or "feature_mean" not in domain or len(images) == 0:
        return None
    stats, _ = image_statistics(_units(loaded, images), list(loaded.config.channels))
    return (stats - np.asarray(domain["feature_mean"])) / np.maximum(np.asarray(domain["feature_std"]), 1e-9)


def domain_scores(loaded: Any, images: np.ndarray) -> tuple[np.ndarray, tuple[float, str] | None]:
    """Per image the RMS z of its statistics against the training images' (NaN for cards without them), and
    for the whole chunk the largest |mean z| of any statistic with that statistic's name (statistics computed once)."""
    z = _z(loaded, images)
    if z is None:
        return np.full(len(images), np.nan), None
    shift = np.abs(z.mean(axis=0))
    k = int(shift.argmax())
    return np.sqrt((z ** 2).mean(axis=1)), (float(shift[k]), loaded.card["input"]["domain"]["features"][k])


def training_domain(prep: Any, limit: int = 4000, chunk: int = 512) -> dict[str, Any]:
    """The training images' statistics (mean and std of each), for the card (what predict compares with)."""
    rows = np.sort(np.asarray(prep.plan["train"])[:limit])
    mapping = prep.normalizer.mapping
    stats, names = [], []
    for start in range(0, len(rows), chunk):  # a chunk at a time: the cache is memory-mapped, never copied whole
        units = cached_to_units(np.asarray(prep.data.images[rows[start:start + chunk]]), mapping, np.float32)
        block, names = image_statistics(units, list(prep.preprocessing.channels))
        stats.append(block)
    s = np.concatenate(stats)
    return {"features": names, "feature_mean": s.mean(0).tolist(), "feature_std": s.std(0).tolist(), "n_images": int(len(rows)),
            "what": "per training image: per band mean, pixel std, sky (border median), concentration, and adjacent-band "
                    "colours, in the model's input units before standardisation; predict's domain_z is the RMS z"}
