"""The ensemble's model.ts and model.onnx: the calibrated average and each member's probabilities."""

import numpy as np
import pytest
import torch

from galaxy_synth.export.ensemble_folder import write_ensemble_network
from galaxy_synth.export.folder import example_inputs
from synthesis.models import EnsembleModel
from tests.synthesis.models.test_ensemble import SPECS, T, WEIGHTS, _members, _want


def test_torchscript_and_onnx_files_give_the_average_and_the_members(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    _, packaged = _members()
    note = write_ensemble_network(tmp_path, EnsembleModel(packaged, WEIGHTS, T).eval(), SPECS[0])
    assert note["verified"]
    inputs = example_inputs(SPECS[0], n=3)
    want, members = _want(packaged, inputs)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.inference_mode():
        assert torch.allclose(torch.softmax(scripted(*inputs), 1), want, atol=1e-5)
        assert torch.allclose(scripted.member_probabilities(*inputs), members, atol=1e-5)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, onnx_members = session.run(None, {"images": inputs[0].numpy(), "extra": inputs[1].numpy()})
    assert np.allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), want.numpy(), atol=1e-5)
    assert np.allclose(onnx_members.transpose(1, 0, 2), members.numpy(), atol=1e-5)
