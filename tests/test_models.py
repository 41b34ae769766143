import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from synthesis.models.blocks import StridedPointwiseConv
from synthesis.models.builder import build_model
from synthesis.models.spec import ArchSpec

ROOT = Path(__file__).resolve().parents[1]


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


def test_spec_cost_counts_what_torch_counts_on_samples_of_the_space():
    import optuna

    from synthesis.models.builder import count_flops, count_params, spec_cost
    from synthesis.search.space import SearchSpace

    space = SearchSpace()
    for i in range(40):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        spec, _ = space.suggest(study.ask(), 4, 32 if i % 2 else 64, i % 3)
        model = build_model(spec)
        assert spec_cost(spec) == (count_params(model), count_flops(model, spec)), spec.describe()


def test_fit_to_caps_shrinks_the_widest_stage_first_and_stops_when_it_fits():
    from synthesis.models.spec import StageSpec
    from synthesis.search.space import fit_to_caps

    big = ArchSpec(num_classes=4, stages=(StageSpec(4, 128), StageSpec(4, 128), StageSpec(4, 96)), block="inverted",
                   image_size=32)
    fit = fit_to_caps(big, 5_000_000, 40e6)
    assert fit.sampled_flops > 40e6 >= fit.flops and fit.changed
    assert fit.steps[0] == "stage 0 width 128→96"  # the widest, earliest of equals
    assert fit.spec.block == big.block and [s.depth for s in fit.spec.stages] == [4, 4, 4]
    small = fit_to_caps(fit.spec, 5_000_000, 40e6)
    assert not small.changed and small.spec == fit.spec  # already under the caps: untouched


def test_reference_architectures_build_train_and_take_extra_inputs():
    from synthesis.models.builder import spec_cost
    from synthesis.models.spec import REFERENCE_NAMES, ReferenceSpec, model_spec_from_dict

    for name in REFERENCE_NAMES:
        spec = ReferenceSpec(name, num_classes=3, image_size=32, n_extra=2)
        assert model_spec_from_dict(spec.to_dict()) == spec
        model = build_model(spec)
        out = model(torch.zeros(2, 3, 32, 32), torch.zeros(2, 2))
        assert out.shape == (2, 3)
        params, flops = spec_cost(spec)
        assert params == sum(p.numel() for p in model.parameters()) and flops > 0
    assert spec_cost(ReferenceSpec("resnet18", 4, 32))[1] > 1e9  # the CIFAR-style stem keeps 32 px: ~1.1 GFLOPs
