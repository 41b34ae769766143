"""The one weights format: weights, spec and preprocessing in one file; older files still load."""

import pytest
import torch

from synthesis.data.preprocessing import ExtraScaler, Normalizer, PreprocessingConfig
from synthesis.models.blocks import StridedPointwiseConv
from synthesis.models.builder import build_model
from synthesis.models.package import (
    WEIGHTS_FORMAT,
    PackagedModel,
    fused_for_inference,
    load_model,
    save_model,
)
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


def _trained_looking(net):
    """Batch-norm statistics away from (0, 1), so that folding them in is not trivially the identity."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


@pytest.mark.parametrize("block", ["plain", "residual", "inverted"])
@pytest.mark.parametrize("n_extra", [0, 2])
def test_the_fused_inference_copy_computes_the_same_logits_without_batch_norm(block, n_extra):
    torch.manual_seed(0)
    spec = ArchSpec(num_classes=3, stages=(StageSpec(1, 8), StageSpec(2, 16)), block=block, image_size=16, n_extra=n_extra)
    net = _trained_looking(build_model(spec))
    packaged = PackagedModel(net, Normalizer((0.1,) * 3, (0.2,) * 3), ExtraScaler([0.5] * n_extra, [0.1] * n_extra), n_extra,
                             temperature=1.3).eval()
    fast = fused_for_inference(packaged)
    x = torch.rand(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    args = (x, torch.rand(4, n_extra)) if n_extra else (x,)
    with torch.inference_mode():
        torch.testing.assert_close(fast(*args), packaged(*args), atol=1e-5, rtol=1e-5)
    # every batch norm folded, but a strided shortcut's (fx traces through that custom convolution)
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert left <= sum(isinstance(m, StridedPointwiseConv) for m in packaged.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in packaged.modules())  # the original is left as trained


def test_a_network_fx_cannot_trace_is_returned_unfused_and_still_right():
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 3, 3), torch.nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.bn(self.conv(x))
            return (y if y.sum() > 0 else -y).mean((2, 3))  # control flow on a value: not traceable

    packaged = PackagedModel(_trained_looking(DataDependent()), Normalizer((0.0,) * 3, (1.0,) * 3), ExtraScaler([], []), 0).eval()
    fast = fused_for_inference(packaged)
    x = torch.rand(2, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), packaged(x))


@pytest.mark.parametrize("block", ["c4", "d4"])
def test_an_equivariant_network_runs_in_predict_as_folded_plain_convolutions_and_ignores_quarter_turns(block):
    from synthesis.models.equivariant import LiftingConv

    torch.manual_seed(0)
    spec = ArchSpec(num_classes=3, stages=(StageSpec(1, 8), StageSpec(2, 16)), block=block, stem_width=8, image_size=16,
                    n_extra=2, downsample="stride")
    g = torch.Generator().manual_seed(1)
    net = build_model(spec)
    for m in net.modules():  # trained-looking field batch norms
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    packaged = PackagedModel(net.eval(), Normalizer((0.1, 0.2, 0.3), (0.2, 0.3, 0.4)), ExtraScaler([0.5] * 2, [0.1] * 2), 2,
                             temperature=1.3).eval()
    fast = fused_for_inference(packaged)
    assert not any(isinstance(m, (LiftingConv, torch.nn.BatchNorm3d, torch.nn.BatchNorm2d)) for m in fast.modules())
    x, extra = torch.rand(4, 3, 16, 16), torch.rand(4, 2)
    with torch.inference_mode():
        probabilities = packaged(x, extra).softmax(1)
        torch.testing.assert_close(fast(x, extra).softmax(1), probabilities, atol=1e-5, rtol=0)
        for turns in (1, 2, 3):  # the packaged model (normalisation, temperature) as a whole ignores quarter turns
            turned = torch.rot90(x, turns, dims=(-2, -1))
            assert (fast(turned, extra).softmax(1) - probabilities).abs().max() < 1e-4
            assert (packaged(turned, extra).softmax(1) - probabilities).abs().max() < 1e-4
