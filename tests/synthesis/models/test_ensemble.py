"""EnsembleModel: the weighted mean of the members' calibrated probabilities, its log over the ensemble's
temperature; saved and loaded without code; fused (its files: tests/galaxy_synth/export/test_ensemble_folder.py)."""

import torch

from synthesis.data.preprocessing import ExtraScaler, Normalizer, PreprocessingConfig
from synthesis.models.builder import build_model
from synthesis.models.ensemble import ENSEMBLE_FORMAT, EnsembleModel, load_ensemble, save_ensemble
from synthesis.models.package import PackagedModel
from synthesis.models.spec import ArchSpec, StageSpec

SPECS = [ArchSpec(num_classes=3, stages=(StageSpec(1, 8), StageSpec(1, 16)), image_size=16, n_extra=2),
         ArchSpec(num_classes=3, stages=(StageSpec(1, 12),), block="residual", image_size=16, n_extra=2)]
NORM, SCALER = Normalizer((0.1, 0.2, 0.3), (0.2, 0.3, 0.4)), ExtraScaler([0.5] * 2, [0.1] * 2)
PREP = PreprocessingConfig(image_size=16, crop=0.5, channels=("R", "G", "B"), mean=(0.1, 0.2, 0.3), std=(0.2, 0.3, 0.4),
                           class_names=("a", "b", "c"))
WEIGHTS, TEMPERATURES, T = [2 / 3, 1 / 3], [1.7, 0.6], 1.3


def _members():
    torch.manual_seed(0)
    nets = [build_model(s).eval() for s in SPECS]
    return nets, [PackagedModel(n, NORM, SCALER, 2, t).eval() for n, t in zip(nets, TEMPERATURES)]


def _want(packaged, inputs):
    with torch.inference_mode():
        members = torch.stack([torch.softmax(m(*inputs), 1) for m in packaged])
    mean = (members * torch.tensor(WEIGHTS).view(-1, 1, 1)).sum(0)
    return torch.softmax(torch.log(mean) / T, 1), members


def test_the_ensemble_is_the_calibrated_average_and_loads_back_without_code(tmp_path):
    nets, packaged = _members()
    inputs = (torch.rand(5, 3, 16, 16), torch.rand(5, 2))
    want, members = _want(packaged, inputs)
    ensemble = EnsembleModel(packaged, WEIGHTS, T).eval()
    with torch.inference_mode():
        assert torch.allclose(torch.softmax(ensemble(*inputs), 1), want, atol=1e-6)
        assert torch.allclose(ensemble.member_probabilities(*inputs), members, atol=1e-6)
    path = save_ensemble(tmp_path / "model.pt", nets, SPECS, TEMPERATURES, WEIGHTS, PREP, T, [{"trial": 1}, {"trial": 2}])
    assert torch.load(path, weights_only=True)["format"] == ENSEMBLE_FORMAT
    back = load_ensemble(path, NORM, SCALER)
    with torch.inference_mode():
        assert torch.allclose(torch.softmax(back(*inputs), 1), want, atol=1e-6)
        assert torch.allclose(torch.softmax(back.fused()(*inputs), 1), want, atol=1e-5)
