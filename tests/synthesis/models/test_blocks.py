import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from synthesis.models.blocks import StridedPointwiseConv

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("size", [31, 32])
def test_strided_pointwise_conv_matches_a_plain_strided_conv(size):
    torch.manual_seed(0)
    ours = StridedPointwiseConv(8, 24, 2)
    plain = nn.Conv2d(8, 24, 1, stride=2, bias=False)
    plain.load_state_dict(ours.state_dict())  # same parameter names and shapes
    x = torch.randn(5, 8, size, size, requires_grad=True)
    y_ours, y_plain = ours(x), plain(x)
    assert y_ours.shape == y_plain.shape
    torch.testing.assert_close(y_ours, y_plain)
    (g_ours,) = torch.autograd.grad(y_ours.square().sum(), x)
    (g_plain,) = torch.autograd.grad(y_plain.square().sum(), x)
    torch.testing.assert_close(g_ours, g_plain)


def test_residual_downsampling_block_trains_on_odd_batches_in_channels_last():
    """The configuration that crashed a gz1 random-search trial (heap corruption, process killed).

    Run in a subprocess: a native crash must fail this test, not take pytest down with it.
    """
    script = textwrap.dedent(
        """
        import torch
        from synthesis.models.builder import build_model
        from synthesis.models.spec import ArchSpec, StageSpec
        spec = ArchSpec(num_classes=4, stages=(StageSpec(1, 8), StageSpec(1, 24)), block="residual",
                        stem_width=8, downsample="stride", image_size=32)
        torch.manual_seed(0)
        model = build_model(spec).to(memory_format=torch.channels_last)
        for batch in (3, 7, 13, 13, 31):
            x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
            model(x).logsumexp(1).mean().backward()
        print("trained")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained" in proc.stdout
