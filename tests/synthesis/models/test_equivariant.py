"""Equivariant blocks: turning the input permutes the group channels exactly, the pooled features do not change,
a d4 network cannot tell an image from its mirror image, and the plain-convolution form is the same function."""

import pytest
import torch

from synthesis.errors import GalaxySynthError
from synthesis.models.builder import build_model
from synthesis.models.equivariant import FieldBatchNorm, GroupConv, LiftingConv, plain_convolutions, transform
from synthesis.models.spec import ArchSpec, StageSpec, group_of


def _spec(block, downsample="maxpool", n_extra=0):
    return ArchSpec(num_classes=5, stages=(StageSpec(2, 16), StageSpec(1, 32)), block=block, stem_width=8,
                    downsample=downsample, image_size=32, n_extra=n_extra)


def _trained_looking(net):
    """Batch-norm statistics and scales away from their initial values, as after training."""
    g = torch.Generator(device="cpu").manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, device="cpu") * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g, device="cpu") + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g, device="cpu") + 0.5)
    return net.eval()


@pytest.mark.parametrize("block", ["c4", "d4"])
def test_the_group_law_is_that_of_the_image_maps(block):
    group = group_of(block)
    image = torch.randn(5, 5)
    for g in range(group.order):
        assert torch.equal(transform(transform(image, group, group.inverse(g)), group, g), image)
        for h in range(group.order):
            assert torch.equal(transform(image, group, group.multiply(g, h)), transform(transform(image, group, h), group, g))


@pytest.mark.parametrize("block", ["c4", "d4"])
def test_turning_the_input_turns_the_maps_and_permutes_each_fields_channels(block):
    group = group_of(block)
    order = group.order
    torch.manual_seed(0)
    lift, conv = LiftingConv(3, 2 * order, 5, group), GroupConv(2 * order, 3 * order, 3, group)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        out = conv(torch.relu(lift(x))).view(2, 3, order, 12, 12)
        for h in range(group.order):
            turned = conv(torch.relu(lift(transform(x, group, h)))).view(2, 3, order, 12, 12)
            for g in range(order):  # channel g of a field moves to h∘g, and its map turns with the image
                torch.testing.assert_close(turned[:, :, group.multiply(h, g)], transform(out[:, :, g], group, h),
                                           atol=1e-5, rtol=0)


@pytest.mark.parametrize("block", ["c4", "d4"])
@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
@pytest.mark.parametrize("training", [False, True])
def test_the_pooled_features_and_outputs_ignore_every_element_of_the_group(block, downsample, training):
    group = group_of(block)
    torch.manual_seed(0)
    net = _trained_looking(build_model(_spec(block, downsample, n_extra=2))).train(training)
    x, extra = torch.randn(4, 3, 32, 32), torch.randn(4, 2)
    with torch.no_grad():
        features, logits = net.features(x, extra), net(x, extra)
        assert (features[0] - features[1]).abs().max() > 1e-3  # not trivially constant
        for g in range(1, group.order):
            torch.testing.assert_close(net.features(transform(x, group, g), extra), features, atol=1e-5, rtol=0)
            torch.testing.assert_close(net(transform(x, group, g), extra), logits, atol=1e-5, rtol=0)


def test_a_d4_network_gives_an_image_and_its_mirror_image_the_same_outputs_a_c4_one_does_not():
    """Why d4 is refused where a mirror flip turns one class into another (spiral_cw ↔ spiral_acw)."""
    x = torch.randn(4, 3, 32, 32)
    mirrored = x.flip(-1)
    torch.manual_seed(0)
    d4, c4 = build_model(_spec("d4")).eval(), build_model(_spec("c4")).eval()
    with torch.no_grad():
        torch.testing.assert_close(d4(mirrored).softmax(1), d4(x).softmax(1), atol=1e-6, rtol=0)
        assert (c4(mirrored).softmax(1) - c4(x).softmax(1)).abs().max() > 1e-4  # c4 can tell them apart


@pytest.mark.parametrize("block", ["c4", "d4"])
def test_the_plain_convolution_form_is_the_same_function_of_ordinary_modules(block):
    torch.manual_seed(0)
    net = _trained_looking(build_model(_spec(block, "stride", n_extra=2)))
    plain = plain_convolutions(net)
    assert not any(isinstance(m, (LiftingConv, FieldBatchNorm)) for m in plain.modules())
    assert any(isinstance(m, LiftingConv) for m in net.modules())  # the trained model is left as it is
    x, extra = torch.randn(3, 3, 32, 32), torch.randn(3, 2)
    with torch.no_grad():
        torch.testing.assert_close(plain(x, extra), net(x, extra), atol=1e-5, rtol=1e-5)
    ordinary = build_model(_spec("residual"))
    assert plain_convolutions(ordinary) is ordinary


def test_widths_count_channels_and_must_be_multiples_of_the_group_order():
    ArchSpec(num_classes=3, stages=(StageSpec(1, 12),), block="c4", stem_width=8)
    with pytest.raises(GalaxySynthError, match="multiple of 8"):
        ArchSpec(num_classes=3, stages=(StageSpec(1, 12),), block="d4", stem_width=8)
    torch.manual_seed(0)
    net = build_model(ArchSpec(num_classes=3, stages=(StageSpec(1, 16),), block="c4", stem_width=8))
    assert net.classifier.in_features == 16 // 4  # one feature per field after the group pool
