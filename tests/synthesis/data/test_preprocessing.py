"""Normalisation and extra-input scaling, fitted on the training rows only."""

import numpy as np
import torch

from synthesis.data.preprocessing import ExtraScaler, Normalizer


def test_normaliser_statistics_come_from_the_rows_asked_for_in_chunks():
    images = np.zeros((10, 4, 4, 3), np.uint8)
    images[:5] = 255  # the "training" rows are white, the others black
    whole = Normalizer.fit(images, np.arange(5), chunk=2)
    assert whole.mean == (1.0, 1.0, 1.0) and whole.std == (1e-3,) * 3  # constant: the floor, not a division by 0
    half = Normalizer.fit(images, chunk=3)
    assert half.mean == (0.5, 0.5, 0.5) and np.allclose(half.std, 0.5)
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    assert torch.allclose(half(x), torch.ones(2, 3, 4, 4))


def test_extra_scaler_standardises_with_training_statistics():
    train = np.array([[0.1, 1.0], [0.3, 3.0]], np.float32)
    scaler = ExtraScaler.fit(train)
    out = scaler.transform(np.array([[0.2, 2.0]], np.float32))
    assert np.allclose(out, 0.0) and out.dtype == np.float32
    assert ExtraScaler.fit(np.zeros((3, 0))).transform(np.zeros((2, 0))).shape == (2, 0)


def test_the_exportable_asinh_is_torch_asinh_for_faint_and_bright_pixels():
    from synthesis.data.preprocessing import asinh

    v = torch.tensor([-1e6, -30.0, -1.0, -1e-4, 0.0, 1e-4, 0.5, 3.0, 1e6])
    assert torch.allclose(asinh(v), torch.asinh(v), rtol=1e-5, atol=1e-6)


def test_band_mapping_takes_sky_and_noise_from_training_pixels_and_numpy_matches_torch():
    from synthesis.data.preprocessing import BandMapping

    rng = np.random.default_rng(0)
    # two bands on float16 storage scaled by 0.5: sky 10 / noise 2 in band 0, sky -1 / noise 0.1 in band 1
    raw = np.stack([rng.normal(10, 2, (40, 8, 8)), rng.normal(-1, 0.1, (40, 8, 8))], axis=-1)
    raw[20:] += 1000.0  # rows outside the training split must not move the fit
    stored = (raw / 0.5).astype(np.float16)
    mapping = BandMapping.fit(stored, np.arange(20), "asinh", storage=(0.5, 0.5))
    assert np.allclose(mapping.offset, (10, -1), atol=0.3) and np.allclose(mapping.scale, (2, 0.1), rtol=0.15)
    norm = Normalizer.fit(stored, np.arange(20), mapping=mapping)
    x = torch.from_numpy(stored[:4].astype(np.float32)).permute(0, 3, 1, 2)
    units = norm(x)
    expected = (np.arcsinh((stored[:4].astype(np.float32) * 0.5 - np.array(mapping.offset)) / np.array(mapping.scale))
                - np.array(norm.mean)) / np.array(norm.std)
    assert np.allclose(units.permute(0, 2, 3, 1).numpy(), expected, atol=1e-4)
    assert abs(float(norm(torch.from_numpy(stored[:20].astype(np.float32)).permute(0, 3, 1, 2)).mean())) < 1e-3
    assert BandMapping.from_dict(mapping.to_dict()) == mapping
    linear = BandMapping.fit(stored, np.arange(20), "robust", storage=(0.5, 0.5))
    assert np.allclose(linear.numpy(np.array([[12.0, -0.9]], np.float32)), [[1.0, 1.0]], atol=0.2)
