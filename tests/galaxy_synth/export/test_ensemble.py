"""export --ensemble: models/ensemble/ averages its members' calibrated probabilities in TorchScript and ONNX,
its card says what predict needs, and predict runs it on both engines with the uncertainty columns."""

import json

import numpy as np
import pytest
import torch

from galaxy_synth.cli import main
from galaxy_synth.export.folder import example_inputs
from galaxy_synth.predict.network import load_model_dir


def test_the_ensemble_folder_and_card(ensemble_study):
    folder = ensemble_study / "ensemble"
    assert {"model.pt", "arch.json", "model.ts", "model.onnx", "card.json", "card.md", "test_predictions.csv",
            "reliability.png", "risk_coverage.png"} <= {p.name for p in folder.iterdir()}
    card = json.loads((folder / "card.json").read_text())
    members = card["ensemble"]["members"]
    assert 1 <= len(members) <= 3 and sum(m["weight"] for m in members) == pytest.approx(1.0)
    assert list(card["ensemble"]["validation_log_loss"]) == sorted(card["ensemble"]["validation_log_loss"], reverse=True)
    for key in ("accuracy", "balanced_accuracy", "log_loss", "ece"):
        assert key in card["test"]["ensemble"] and all(key in m for m in card["test"]["members"].values())
    assert card["selective"]["validation_error"] is None or card["selective"]["validation_error"] <= 0.05
    for curve in card["risk_coverage"]["curves"].values():
        assert 0 <= curve["aurc"] <= 1 and len(curve["coverage"]) == len(curve["error"])
    assert card["onnx"]["verified"] and card["params"] > 0 and card["flops_per_image"] > 0
    paired, y = card["test"]["paired"], card["test"]["n_images"]
    assert set(paired["candidates"]) == {str(t) for t in card["ensemble"]["candidate_trials"]}
    for trial, d in paired["candidates"].items():  # the paired difference is the difference of the accuracies
        member = card["test"]["members"].get(trial)
        if member is not None:
            assert d["difference"] == pytest.approx(card["test"]["ensemble"]["accuracy"] - member["accuracy"])
        assert d["n"] == y and d["ci95"][0] <= d["difference"] <= d["ci95"][1]
    assert 0 <= card["test"]["errors_in_least_certain"]["share_of_errors"] <= 1 or card["test"]["errors_in_least_certain"]["errors"] == 0
    assert "best candidate by validation log-loss" in (folder / "card.md").read_text()


def test_torchscript_and_onnx_average_the_members_calibrated_probabilities(ensemble_study):
    import onnxruntime as ort

    folder = ensemble_study / "ensemble"
    loaded = load_model_dir(folder)
    card = loaded.card
    inputs = example_inputs(loaded.spec, n=5)
    weights = np.array([m["weight"] for m in card["ensemble"]["members"]])
    with torch.inference_mode():
        members = np.stack([torch.softmax(m(*inputs), 1).numpy() for m in loaded.model.members])  # each calibrated
        scripted = torch.jit.load(str(folder / "model.ts"))
        ts_logits = scripted(*inputs).numpy()
        ts_members = scripted.member_probabilities(*inputs).numpy()
    mean = np.tensordot(weights, members, axes=1)
    temperature = card["probability_calibration"]["temperature"]
    want = torch.softmax(torch.from_numpy(np.log(mean) / temperature), 1).numpy()
    assert torch.softmax(torch.from_numpy(ts_logits), 1).numpy() == pytest.approx(want, abs=1e-5)
    assert ts_members == pytest.approx(members, abs=1e-5)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, onnx_members = session.run(None, {n.name: t.numpy() for n, t in zip(session.get_inputs(), inputs)})
    assert torch.softmax(torch.from_numpy(logits), 1).numpy() == pytest.approx(want, abs=1e-5)
    assert onnx_members.transpose(1, 0, 2) == pytest.approx(members, abs=1e-5)
    if temperature == 1.0 and len(weights) == 1:
        return
    assert not np.allclose(want, members[0], atol=1e-4)  # the average, calibrated: not just the first member


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_predict_runs_the_ensemble_with_uncertainty(ensemble_study, tmp_path, engine):
    import pandas as pd

    from synthesis.training import mutual_information, predictive_entropy

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    from PIL import Image

    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / f"g{i}.png")
    out = tmp_path / f"{engine}.csv"
    assert main(["predict", "--model", str(ensemble_study / "ensemble"), str(images), "-o", str(out), "--engine", engine,
                 "--no-progress", "--workers", "1", "--target-error", "0.2"]) == 0
    table = pd.read_csv(out)
    probs = table[[c for c in table if c.startswith("p_")]].to_numpy()
    assert table["predictive_entropy"].to_numpy() == pytest.approx(predictive_entropy(probs), abs=1e-4)
    assert (table["mutual_information"] >= 0).all() and "reliable" in table
    loaded = load_model_dir(ensemble_study / "ensemble")
    from galaxy_synth.predict.network import read_inputs

    x = read_inputs(loaded, [[str(images / f)] for f in table["file"].map(lambda p: p.split("/")[-1])])
    extras = np.tile(np.asarray(loaded.card["extra_inputs"]["mean"], np.float32), (len(x), 1))
    _, members = loaded.probabilities_with_members(x, extras)
    weights = np.array([m["weight"] for m in loaded.card["ensemble"]["members"]])
    assert table["mutual_information"].to_numpy() == pytest.approx(mutual_information(members, weights), abs=1e-4)


@pytest.mark.parametrize("tta", [False, True], ids=["plain", "tta"])
def test_both_engines_give_the_ensemble_the_same_probabilities_and_members(ensemble_study, tta):
    from galaxy_synth.predict.model_folder import read_model_folder
    from galaxy_synth.predict.onnx_engine import OnnxModel

    loaded = load_model_dir(ensemble_study / "ensemble")
    onnx = OnnxModel.load(read_model_folder(ensemble_study / "ensemble"))
    rng = np.random.default_rng(3)
    x = rng.random((6, loaded.spec.image_size, loaded.spec.image_size, loaded.spec.in_channels), dtype=np.float32)
    extras = np.tile(np.asarray(loaded.card["extra_inputs"]["mean"], np.float32), (6, 1))
    probs, members = loaded.probabilities_with_members(x, extras, tta)
    onnx_probs, onnx_members = onnx.probabilities_with_members(x, extras, tta)
    assert probs == pytest.approx(onnx_probs, abs=1e-5) and members == pytest.approx(onnx_members, abs=1e-5)
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-5) and members.shape == (len(loaded.model.members), 6, probs.shape[1])
    if not tta:  # a single view: the softmax of model.ts's calibrated logits
        with torch.inference_mode():
            logits = loaded.model(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(extras))
        assert probs == pytest.approx(torch.softmax(logits, 1).numpy(), abs=1e-5)


def test_members_with_different_inputs_are_refused():
    from galaxy_synth.export.ensemble import check_shared_inputs
    from synthesis import GalaxySynthError
    from synthesis.models import ArchSpec, StageSpec

    small = ArchSpec(num_classes=3, stages=(StageSpec(1, 8),), image_size=16)
    check_shared_inputs([small, ArchSpec(num_classes=3, stages=(StageSpec(2, 12),), image_size=16)])  # same inputs
    with pytest.raises(GalaxySynthError, match="different inputs"):
        check_shared_inputs([small, ArchSpec(num_classes=3, stages=(StageSpec(1, 8),), image_size=32)])


def test_errors_in_least_certain_counts_the_errors_among_the_highest_entropy_fifth():
    from galaxy_synth.export.ensemble import errors_in_least_certain

    labels = np.zeros(10, dtype=int)
    sure_right = [0.99, 0.01]
    probabilities = np.array([[0.45, 0.55], [0.4, 0.6]] + [sure_right] * 7 + [[0.02, 0.98]])  # 3 errors
    e = errors_in_least_certain(probabilities, labels)
    assert e["errors"] == 3 and e["share_of_errors"] == pytest.approx(2 / 3)  # the 2 least certain are 2 of the 3
