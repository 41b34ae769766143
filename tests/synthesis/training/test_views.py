import numpy as np
import pytest
import torch

from synthesis.training.views import (
    dihedral_views,
    mirror_permutation,
    view_logits,
    view_of,
)


@pytest.mark.parametrize("view", dihedral_views(True))
def test_each_view_is_the_rotated_and_mirrored_image_in_the_input_memory_format(view):
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    turns, mirrored = view
    expected = np.rot90(np.flip(x.numpy(), -1) if mirrored else x.numpy(), turns, axes=(-2, -1))
    out = view_of(x, view)
    np.testing.assert_array_equal(out.numpy(), expected)
    # a channels-last batch must stay channels-last: fed NCHW, the CPU's max-pools run ~8x slower
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_the_identity_view_is_the_batch_itself_not_a_copy():
    x = torch.randn(2, 3, 4, 4)
    assert view_of(x, (0, False)) is x


def test_mirrored_views_swap_the_mirror_classes_back():
    perm = mirror_permutation(["e", "cw", "acw"], [["cw", "acw"]])
    assert perm == [0, 2, 1]
    # a "network" that reads the left half as cw evidence and the right half as acw evidence
    def forward(v):
        left, right = v[..., :2].sum((1, 2, 3)), v[..., 2:].sum((1, 2, 3))
        return torch.stack([torch.zeros_like(left), left, right], 1)
    x = torch.zeros(1, 1, 4, 4)
    x[..., :2] = 1.0
    logits = view_logits(forward, x, [(0, False), (0, True)], perm)
    torch.testing.assert_close(logits[0], logits[1])
