
import torch

from synthesis.models.builder import build_model


def test_reference_architectures_build_train_and_take_extra_inputs():
    from synthesis.models.builder import spec_cost
    from synthesis.models.spec import (
        REFERENCE_NAMES,
        ReferenceSpec,
        model_spec_from_dict,
    )

    for name in REFERENCE_NAMES:
        spec = ReferenceSpec(name, num_classes=3, image_size=32, n_extra=2)
        assert model_spec_from_dict(spec.to_dict()) == spec
        model = build_model(spec)
        out = model(torch.zeros(2, 3, 32, 32), torch.zeros(2, 2))
        assert out.shape == (2, 3)
        params, flops = spec_cost(spec)
        assert params == sum(p.numel() for p in model.parameters()) and flops > 0
    assert spec_cost(ReferenceSpec("resnet18", 4, 32))[1] > 1e9  # the CIFAR-style stem keeps 32 px: ~1.1 GFLOPs
