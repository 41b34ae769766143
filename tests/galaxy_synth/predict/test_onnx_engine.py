"""The ONNX engine: the torch network's probabilities from model.onnx, with and without TTA."""

import numpy as np
import pytest

from galaxy_synth.predict.network import load_model_dir, predict_probabilities
from synthesis.data.synthetic import generate_galaxies
from synthesis.errors import DataError


def test_the_onnx_engine_gives_the_torch_probabilities_with_and_without_tta(exported_study):
    pytest.importorskip("onnxruntime", reason="the ONNX engine needs onnxruntime (in the dev extra)")
    from galaxy_synth.predict.onnx_engine import OnnxModel

    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    onnx = OnnxModel.load(loaded)
    imgs, _, extras, _ = generate_galaxies(n=20, size=32, seed=6)
    x = imgs.astype(np.float32) / 255.0
    for tta in (False, True):
        want = predict_probabilities(loaded, x, extras, tta=tta)
        got = onnx.probabilities(x, extras, tta=tta)
        assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()
    assert not np.allclose(onnx.probabilities(x, extras[::-1].copy()), onnx.probabilities(x, extras))  # extras reach it
    with pytest.raises(DataError, match="runs fp32"):
        onnx.probabilities(x, extras, precision="bf16")
