"""The model card: numbers that a re-evaluation reproduces."""

import json

import numpy as np
import pytest
import torch

from galaxy_synth.predict.network import load_model_dir
from synthesis.data.preprocessing import Normalizer
from synthesis.models.builder import count_params
from synthesis.search.study import reopen_study
from synthesis.training.loop import evaluate


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
    selective = card["selective"]  # predict's `reliable`: chosen on the validation split for the target error
    assert selective["target_error"] == 0.05 and len(selective["validation_curve"]["entropy"]) > 0
    assert selective["validation_error"] is None or selective["validation_error"] <= 0.05
