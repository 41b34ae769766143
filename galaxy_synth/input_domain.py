"""Is this image like the training images? Per-band brightness and contrast against the training set's.

Export stores, per band, the distribution over training images of each image's mean and of its
pixel standard deviation (in the model's input units before standardisation: [0, 1] for 8-bit
images, the band mapping's units for FITS). ``domain_z`` of an image is the largest |z| of its own
mean and std against those, over bands: ~1 for images like the training set's, far more for images
from another survey, another stretch or another crop. Predict writes it per row and warns once
when a chunk's median exceeds :data:`DOMAIN_WARNING_Z`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DOMAIN_WARNING_Z = 3.0


def domain_z(loaded: Any, images: np.ndarray) -> np.ndarray:
    """Per image: the largest |z| over bands of its mean brightness and its contrast (pixel std) against the
    training images' distribution of those (card ``input.domain``), after the model's own band mapping."""
    domain = loaded.card["input"].get("domain")
    if not domain:
        return np.full(len(images), np.nan)
    units = images
    mapping = loaded.config.band_mapping
    if mapping:
        from synthesis.data.preprocessing import BandMapping

        units = BandMapping.from_dict(mapping).numpy(images)
    per_image_mean = units.mean(axis=(1, 2))
    per_image_std = units.std(axis=(1, 2))
    z_mean = np.abs(per_image_mean - domain["mean_of_means"]) / np.maximum(domain["std_of_means"], 1e-6)
    z_std = np.abs(per_image_std - domain["mean_of_stds"]) / np.maximum(domain["std_of_stds"], 1e-6)
    return np.maximum(z_mean, z_std).max(axis=1)


def training_domain(prep: Any, limit: int = 4000, chunk: int = 512) -> dict[str, Any]:
    """The training images' per-band distribution of mean brightness and contrast (export writes it into the card)."""
    rows = np.sort(np.asarray(prep.plan["train"])[:limit])
    mapping = prep.normalizer.mapping
    means, stds = [], []
    for start in range(0, len(rows), chunk):  # a chunk at a time: the cache is memory-mapped, never copied whole
        pixels = np.asarray(prep.data.images[rows[start:start + chunk]], dtype=np.float32)
        units = mapping.numpy(pixels * np.asarray(mapping.storage, np.float32)) if mapping is not None else pixels / 255.0
        means.append(units.mean(axis=(1, 2)))
        stds.append(units.std(axis=(1, 2)))
    m, s = np.concatenate(means), np.concatenate(stds)
    return {"mean_of_means": m.mean(0).tolist(), "std_of_means": m.std(0).tolist(),
            "mean_of_stds": s.mean(0).tolist(), "std_of_stds": s.std(0).tolist(), "n_images": int(len(rows)),
            "what": "per band, over training images: the mean and std of each image's mean and of its pixel std, "
                    "in the model's input units before standardisation"}
