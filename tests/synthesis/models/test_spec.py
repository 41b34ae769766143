import json

import pytest
import torch

from synthesis.errors import GalaxySynthError
from synthesis.models.builder import build_model, count_flops, count_params
from synthesis.models.spec import BLOCK_TYPES, ArchSpec, StageSpec, TrainConfig


def make_spec(**kw):
    base = dict(num_classes=4, stages=(StageSpec(2, 16), StageSpec(1, 32)), image_size=32)
    return ArchSpec(**{**base, **kw})


def test_json_round_trip_rebuilds_identical_model():
    spec = make_spec(block="residual", n_extra=2, dropout=0.2)
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.spec_hash() == spec.spec_hash()
    torch.manual_seed(0)
    a = build_model(spec)
    b = build_model(again)
    b.load_state_dict(a.state_dict())  # same parameter names and shapes
    a.eval(), b.eval()
    x, e = torch.randn(3, 3, 32, 32), torch.randn(3, 2)
    assert torch.equal(a(x, e), b(x, e))


def test_hash_changes_with_architecture():
    assert make_spec().spec_hash() != make_spec(stages=(StageSpec(2, 16), StageSpec(2, 32))).spec_hash()


@pytest.mark.parametrize("block", BLOCK_TYPES)
@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
def test_every_block_type_builds_and_runs(block, downsample):
    spec = make_spec(block=block, downsample=downsample)
    model = build_model(spec)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4)
    assert count_params(model) > 0
    assert count_flops(model, spec) > 0


def test_flops_match_hand_count_for_a_tiny_plain_net():
    spec = ArchSpec(num_classes=2, stages=(StageSpec(1, 4),), block="plain", stem_width=2, stem_kernel=3, image_size=8)
    # stem conv 3->2, 3x3, 8x8 output; block conv 2->4, 3x3, 4x4 (after maxpool); linear 4->2. 2 FLOPs per MAC.
    macs = 3 * 2 * 9 * 64 + 2 * 4 * 9 * 16 + 4 * 2
    assert count_flops(build_model(spec), spec) == 2 * macs


def test_extra_inputs_are_required_when_declared():
    model = build_model(make_spec(n_extra=2))
    with pytest.raises(ValueError, match="extra inputs"):
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("bad", [
    dict(block="transformer"), dict(num_classes=1), dict(stages=()), dict(dropout=1.5),
    dict(image_size=4, stages=(StageSpec(1, 8),) * 3),
])
def test_invalid_specs_are_refused(bad):
    with pytest.raises(GalaxySynthError):
        make_spec(**bad)


def test_unknown_json_keys_are_refused():
    data = json.loads(make_spec().to_json())
    data["colour"] = "red"
    with pytest.raises(GalaxySynthError, match="unknown keys"):
        ArchSpec.from_dict(data)


def test_train_config_validates():
    assert TrainConfig(optimizer="sgd").replace(lr=0.1).lr == 0.1
    with pytest.raises(GalaxySynthError):
        TrainConfig(optimizer="lbfgs")


def test_the_block_names_users_choose_are_the_specs_block_types():
    from synthesis.choices import Block, names
    from synthesis.models.spec import BLOCK_TYPES, EQUIVARIANT_BLOCKS

    assert names(Block) == BLOCK_TYPES + tuple(EQUIVARIANT_BLOCKS)
    assert BLOCK_TYPES == ("plain", "residual", "inverted")  # the default space: equivariant blocks only when asked
