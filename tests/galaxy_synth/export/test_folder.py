"""An exported model folder: files a user can run without galaxy-synth, agreeing with the network."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_synth.export.folder import example_inputs
from galaxy_synth.predict.network import load_model_dir


def test_weights_are_the_one_format_and_never_need_code(exported_study):
    body = torch.load(exported_study / "studies/exp/models/rank1/model.pt", weights_only=True)  # no code runs
    assert body["format"] == "galaxy-synth-model/1" and all(isinstance(v, torch.Tensor) for v in body["state_dict"].values())
    card = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    assert body["preprocessing"] == card["input"]["config"]  # one preprocessing config, the card's and the weights'
    assert body["preprocessing"]["extra_names"] == ["z", "z_err"] and body["preprocessing"]["mirror_pairs"]


def test_torchscript_runs_in_a_fresh_process_without_the_project_and_matches(exported_study, tmp_path):
    folder = exported_study / "studies/exp/models" / "rank1"
    loaded = load_model_dir(folder)
    inputs = example_inputs(loaded.spec, n=5)
    torch.save(inputs, tmp_path / "inputs.pt")
    script = (
        "import sys, torch\n"
        f"m = torch.jit.load({str(folder / 'model.ts')!r})\n"
        f"out = m(*torch.load({str(tmp_path / 'inputs.pt')!r}))\n"
        f"torch.save(out, {str(tmp_path / 'out.pt')!r})\n"
        "assert not any(k.split('.')[0] in ('galaxy_synth', 'synthesis', 'proxies', 'correlation') for k in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with torch.no_grad():
        want = loaded.model(*inputs)
    assert torch.allclose(torch.load(tmp_path / "out.pt"), want, atol=1e-5)


def test_onnx_matches_torch(exported_study):
    ort = pytest.importorskip("onnxruntime")
    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    inputs = example_inputs(loaded.spec, n=7)  # another batch size than the export's check
    session = ort.InferenceSession(str(exported_study / "studies/exp/models/rank1/model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": inputs[0].numpy(), "extra": inputs[1].numpy()})[0]
    with torch.no_grad():
        assert np.allclose(got, loaded.model(*inputs).numpy(), atol=1e-4)
    assert json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())["onnx"]["verified"] is True


def test_the_packaged_model_applies_the_temperature_fitted_on_validation(exported_study):
    card = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    calibration = card["probability_calibration"]
    assert 0.05 <= calibration["temperature"] <= 20 and calibration["ece_after"] >= 0
    assert calibration["ece_after"] <= calibration["ece_before"] + 0.05  # one parameter fitted on val cannot do much harm
    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    inputs = example_inputs(loaded.spec, n=4)
    scripted = torch.jit.load(str(exported_study / "studies/exp/models/rank1/model.ts"))
    with torch.no_grad():
        raw = loaded.model.net((inputs[0] - loaded.model.mean) / loaded.model.std,
                               (inputs[1] - loaded.model.extra_mean) / loaded.model.extra_std)
        assert torch.allclose(scripted(*inputs), raw / calibration["temperature"], atol=1e-5)
    tests = pd.read_csv(exported_study / "studies/exp/models/rank1/test_predictions.csv")
    assert len(tests) == card["test"]["n_images"] and np.allclose(tests.filter(like="p_").sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("block", ["c4", "d4"])
def test_an_equivariant_network_exports_as_plain_convolutions_that_ignore_quarter_turns(block, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from galaxy_synth.export.folder import write_network_files
    from synthesis.data import ExtraScaler, Normalizer
    from synthesis.models import ArchSpec, PackagedModel, StageSpec, build_model

    torch.manual_seed(0)
    spec = ArchSpec(num_classes=4, stages=(StageSpec(1, 8), StageSpec(1, 16)), block=block, stem_width=8, image_size=16,
                    n_extra=2, downsample="stride")
    net = build_model(spec).eval()
    for m in net.modules():  # trained-looking field batch norms
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_(0, 0.3)
    packaged = PackagedModel(net, Normalizer((0.1, 0.2, 0.3), (0.2, 0.3, 0.4)), ExtraScaler([0.5] * 2, [0.1] * 2), 2,
                             temperature=1.3).eval()
    assert write_network_files(tmp_path, packaged, spec)["verified"] is True
    traced = torch.jit.load(str(tmp_path / "model.ts"))
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph and "rot90" not in graph and "flip" not in graph  # plain convolutions
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    images, extra = example_inputs(spec, n=5)
    with torch.no_grad():
        trained = packaged(images, extra).softmax(1)  # the training module, group convolutions and all
        for turns in range(4):
            turned = torch.rot90(images, turns, dims=(-2, -1))
            script = traced(turned, extra).softmax(1)
            onnx = torch.from_numpy(session.run(None, {"images": turned.numpy(), "extra": extra.numpy()})[0]).softmax(1)
            assert (script - trained).abs().max() < 1e-4 and (onnx - trained).abs().max() < 1e-4
