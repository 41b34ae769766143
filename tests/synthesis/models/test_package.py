"""The one weights format: weights, spec and preprocessing in one file; older files still load."""

import pytest
import torch

from synthesis.data.preprocessing import PreprocessingConfig
from synthesis.models.builder import build_model
from synthesis.models.package import WEIGHTS_FORMAT, load_model, save_model
from synthesis.models.spec import ArchSpec, StageSpec

SPEC = ArchSpec(num_classes=3, stages=(StageSpec(1, 8), StageSpec(1, 16)), image_size=16)
PREP = PreprocessingConfig(image_size=16, crop=0.5, channels=("R", "G", "B"), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
                           class_names=("a", "b", "c"), mirror_pairs=(("a", "b"),))


def test_round_trip_with_preprocessing(tmp_path):
    torch.manual_seed(0)
    model = build_model(SPEC)
    path = save_model(tmp_path / "m.pt", model, SPEC, PREP, trial=4)
    assert torch.load(path, weights_only=True)["format"] == WEIGHTS_FORMAT
    back, spec, prep = load_model(path)
    assert spec == SPEC and prep == PREP
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(back.eval()(x), model.eval()(x))


def test_older_files_still_load(tmp_path):
    model = build_model(SPEC)
    torch.save(model.state_dict(), tmp_path / "bare.pt")  # progressive growth and export before the format
    with pytest.raises(ValueError, match="architecture must be given"):
        load_model(tmp_path / "bare.pt")
    assert load_model(tmp_path / "bare.pt", SPEC)[2] is None
    torch.save({"state_dict": model.state_dict(), "arch": SPEC.to_dict(), "normalizer": {"mean": [0] * 3, "std": [1] * 3},
                "extra_scaler": {"mean": [], "std": []}, "class_names": ["a", "b", "c"]}, tmp_path / "gt.pt")
    assert load_model(tmp_path / "gt.pt")[1] == SPEC  # full training's old layout


def test_a_study_from_before_the_config_reads_as_one():
    old = {"normalizer": {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}, "extra_scaler": {"mean": [0.5], "std": [0.1]}}
    config = PreprocessingConfig.from_dict(old, image_size=32, crop=1.0, extra_names=("z",))
    assert config.channels == ("R", "G", "B") and config.extra_mean == (0.5,) and config.crop == 1.0
    assert PreprocessingConfig.from_dict(config.to_dict()) == config
