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
