"""Export: files a user can run without galaxy-synth, numbers that a re-evaluation reproduces."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_synth.cli import main
from galaxy_synth.export import _example_inputs
from galaxy_synth.predict import load_model_dir
from synthesis.data.preprocessing import Normalizer
from synthesis.models.builder import count_params
from synthesis.search.study import reopen_study
from synthesis.training.loop import evaluate


def test_every_file_is_there_and_the_summary_lists_both(exported_study):
    for rank in (1, 2):
        folder = exported_study / "studies/exp/models" / f"rank{rank}"
        assert {p.name for p in folder.iterdir()} == {"model.pt", "arch.json", "model.ts", "model.onnx", "card.json", "card.md",
                                                      "test_predictions.csv", "reliability.png"}
    assert not [p for p in (exported_study / "studies/exp/models").iterdir() if p.name.startswith(".") or p.name.endswith(".old")]
    summary = json.loads((exported_study / "studies/exp/top2_models.json").read_text())
    assert [s["rank"] for s in summary] == [1, 2] and summary[0]["rank_score"] >= summary[1]["rank_score"]
    assert summary[0]["ranked_by"] == "objective"


def test_weights_are_the_one_format_and_never_need_code(exported_study):
    body = torch.load(exported_study / "studies/exp/models/rank1/model.pt", weights_only=True)  # no code runs
    assert body["format"] == "galaxy-synth-model/1" and all(isinstance(v, torch.Tensor) for v in body["state_dict"].values())
    card = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    assert body["preprocessing"] == card["input"]["config"]  # one preprocessing config, the card's and the weights'
    assert body["preprocessing"]["extra_names"] == ["z", "z_err"] and body["preprocessing"]["mirror_pairs"]


def test_torchscript_runs_in_a_fresh_process_without_the_project_and_matches(exported_study, tmp_path):
    folder = exported_study / "studies/exp/models" / "rank1"
    loaded = load_model_dir(folder)
    inputs = _example_inputs(loaded.spec, n=5)
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
    inputs = _example_inputs(loaded.spec, n=7)  # another batch size than the export's check
    session = ort.InferenceSession(str(exported_study / "studies/exp/models/rank1/model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": inputs[0].numpy(), "extra": inputs[1].numpy()})[0]
    with torch.no_grad():
        assert np.allclose(got, loaded.model(*inputs).numpy(), atol=1e-4)
    assert json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())["onnx"]["verified"] is True


def test_card_numbers_match_a_re_evaluation(exported_study):
    card = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    for key in ("class_names", "input", "extra_inputs", "params", "flops_per_image", "cpu_latency", "test", "proxy",
                "training", "data"):
        assert key in card
    assert card["extra_inputs"]["names"] == ["z", "z_err"] and card["input"]["size"] == 32
    assert card["mirror_pairs"] == [["spiral_cw", "spiral_acw"]] and card["cpu_latency"]["median_ms"] > 0
    storage = f"sqlite:///{exported_study / 'study.db'}"
    opened = reopen_study(storage, "exp", exported_study, progress=False)
    data, plan = opened.data, opened.plan
    train, test = np.array(plan["train"]), np.array(plan["test"])
    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    split = opened.prepared().split("test", torch.device("cpu"))
    again = evaluate(loaded.model.net, split, Normalizer.fit(data.images, train), len(data.class_names))
    t = card["test"]
    assert again.confusion == t["confusion"] and again.accuracy == pytest.approx(t["accuracy"])
    assert again.balanced_accuracy == pytest.approx(t["balanced_accuracy"]) and again.macro_f1 == pytest.approx(t["macro_f1"])
    cm = np.array(t["confusion"])
    assert cm.sum() == t["n_images"] == len(test) and np.trace(cm) / cm.sum() == pytest.approx(t["accuracy"])
    assert card["params"] == count_params(loaded.model.net)
    assert "trial" in (exported_study / "studies/exp/models/rank1/card.md").read_text()


def test_a_second_export_reuses_the_stored_full_training(exported_study, capsys):
    before = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    assert before["training"]["weights"] == "trained by galaxy-synth export"
    assert main(["export", "--top", "1", "--full-epochs", "2", "--results", str(exported_study), "--study", "exp",
                 "--no-progress"]) == 0
    after = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    assert after["training"]["weights"].startswith("reused from an earlier full training")
    assert after["test"] == before["test"]


def test_export_of_an_unknown_study_is_one_line(exported_study, capsys):
    assert main(["export", "--results", str(exported_study), "--study", "nope"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_the_model_cards_snippet_runs_as_written(exported_study, tmp_path):
    import re
    import shutil

    folder = tmp_path / "rank1"
    shutil.copytree(exported_study / "studies/exp/models/rank1", folder)
    card = (folder / "card.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert "extra" in snippet  # this model takes z, z_err: the snippet passes them
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", snippet], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "spiral_cw" in res.stdout  # printed the class probabilities


def test_the_packaged_model_applies_the_temperature_fitted_on_validation(exported_study):
    card = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    calibration = card["probability_calibration"]
    assert 0.05 <= calibration["temperature"] <= 20 and calibration["ece_after"] >= 0
    assert calibration["ece_after"] <= calibration["ece_before"] + 0.05  # one parameter fitted on val cannot do much harm
    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    inputs = _example_inputs(loaded.spec, n=4)
    scripted = torch.jit.load(str(exported_study / "studies/exp/models/rank1/model.ts"))
    with torch.no_grad():
        raw = loaded.model.net((inputs[0] - loaded.model.mean) / loaded.model.std,
                               (inputs[1] - loaded.model.extra_mean) / loaded.model.extra_std)
        assert torch.allclose(scripted(*inputs), raw / calibration["temperature"], atol=1e-5)
    tests = pd.read_csv(exported_study / "studies/exp/models/rank1/test_predictions.csv")
    assert len(tests) == card["test"]["n_images"] and np.allclose(tests.filter(like="p_").sum(axis=1), 1, atol=1e-5)
