"""The image statistics behind domain_z, against their definition written out one image at a time."""

import numpy as np
import pytest

from galaxy_synth.predict.input_domain import image_statistics


def statistics_of_one_image(image: np.ndarray) -> list[float]:
    """The definition (docstring of galaxy_synth.predict.input_domain), per image and band, no vectorising."""
    h, w, c = image.shape
    b, q = max(1, h // 8), max(1, h // 4)
    out: dict[str, list[float]] = {"mean": [], "std": [], "sky": [], "concentration": []}
    for k in range(c):
        band = image[:, :, k].astype(np.float64)
        ring = np.concatenate([band[:b].ravel(), band[-b:].ravel(), band[:, :b].ravel(), band[:, -b:].ravel()])
        sky = float(np.median(ring))
        centre = band[h // 2 - q // 2:h // 2 + q // 2 + 1, w // 2 - q // 2:w // 2 + q // 2 + 1].mean()
        out["mean"].append(band.mean())
        out["std"].append(band.std())
        out["sky"].append(sky)
        out["concentration"].append((centre - sky) / (abs(band.mean() - sky) + band.std() + 1e-6))
    colours = [out["mean"][k] - out["mean"][k + 1] for k in range(c - 1)]
    return [*out["mean"], *out["std"], *out["sky"], *out["concentration"], *colours]


@pytest.mark.parametrize("shape", [(5, 32, 32, 3), (3, 48, 40, 1), (4, 20, 20, 5)])
def test_image_statistics_follow_their_definition(shape):
    rng = np.random.default_rng(0)
    images = rng.gamma(2.0, 0.1, size=shape).astype(np.float32)  # skewed, like sky-dominated images
    images[:, shape[1] // 2 - 2:shape[1] // 2 + 2, shape[2] // 2 - 2:shape[2] // 2 + 2] += 1.0  # a bright core
    bands = [f"b{k}" for k in range(shape[-1])]
    stats, names = image_statistics(images, bands)
    assert stats.shape == (shape[0], len(names)) and stats.dtype == np.float64
    expected = np.array([statistics_of_one_image(im) for im in images])
    np.testing.assert_allclose(stats, expected, rtol=1e-5, atol=1e-6)
    assert names[:2] == ["mean b0", "mean b1"] if shape[-1] > 1 else names == ["mean b0", "std b0", "sky b0", "concentration b0"]
