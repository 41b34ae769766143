"""Every place that makes a tensor names its device: checked on a CPU with a 'meta' default device.

Model and data are put on the CPU explicitly, then ``torch.set_default_device("meta")``: a tensor
created without ``device=`` lands on meta, and the first op that mixes it with the CPU data
raises. On a GPU the same mistake is a crash ("Expected all tensors to be on the same device") on
the user's first trial; here it fails a test on a machine without one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesis.data.dataset import load_dataset
from synthesis.data.preparation import build_trial_data, data_plan
from synthesis.data.settings import DataSettings
from synthesis.models.builder import build_model, count_flops
from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig
from synthesis.settings import StudySettings

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cpu_data(tmp_path_factory):
    data = load_dataset(None, size=16, synthetic_n=120, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    plan = data_plan(data, DataSettings.of(StudySettings(max_samples=40, val_subset=20)))
    return data, plan, build_trial_data(data, plan, CPU)


@pytest.fixture
def meta_default():
    """Anything made without an explicit device goes to 'meta' while the test runs."""
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def spec_for(d, block="residual", downsample="stride") -> ArchSpec:
    return ArchSpec(num_classes=len(d.class_names), stages=(StageSpec(1, 8), StageSpec(1, 16)), block=block,
                    downsample=downsample, stem_width=8, image_size=16, n_extra=d.n_extra)


@pytest.mark.parametrize("block", ["plain", "residual", "inverted", "c4", "d4"])
def test_zero_cost_scores_and_flops(cpu_data, meta_default, block):
    from synthesis.search.objective import Objective
    from synthesis.search.settings import TrialSettings

    _, _, d = cpu_data
    torch.manual_seed(0)
    spec = spec_for(d, block)
    model = build_model(spec)
    assert next(model.parameters()).device == CPU  # built on the CPU whatever the default device
    scores = Objective(d, TrialSettings.of(StudySettings())).zero_cost(model)
    assert all(np.isfinite(v) for v in scores.values())
    assert count_flops(model, spec) > 0


def test_a_calibrating_search_with_a_meta_default_device(tmp_path, meta_default):
    """synth --strategy calibrating: every rung's signals, rescoring and refits made without a stray tensor."""
    from galaxy_synth.cli import main

    tiny = ["--results", str(tmp_path), "--no-progress", "--device", "cpu"]
    data = ["--size", "16", "--synthetic-n", "120", "--max-samples", "40", "--val-subset", "20"]
    assert main(["synth", "--strategy", "calibrating", "--epochs", "1", "--fidelities", "1,2", "--trials", "4",
                 "--study", "cal", *data, *tiny]) == 0


def test_normalisation_augmentation_training_and_evaluation(cpu_data, meta_default):
    from synthesis.training.augment import DihedralAugment
    from synthesis.training.loop import evaluate, train_model

    _, _, d = cpu_data
    x = d.normalizer(d.train.x[:8])
    assert x.device == CPU and x.dtype == torch.float32
    g = torch.Generator(device="cpu").manual_seed(0)
    out, y, _ = DihedralAugment(len(d.class_names), d.mirror_pairs, True, noise_std=0.02)(x, d.train.y[:8], g)
    assert out.device == y.device == CPU
    model = build_model(spec_for(d))
    hist = train_model(model, d.train, TrainConfig(optimizer="sgd", schedule="cosine", warmup=0.2), 1,
                       normalizer=d.normalizer, num_classes=len(d.class_names), val=d.val, mirror_pairs=d.mirror_pairs)
    assert np.isfinite(hist.last.val_loss)
    res = evaluate(model, d.val, d.normalizer, len(d.class_names), keep_probabilities=True)
    assert res.probabilities.shape == (len(d.val), len(d.class_names))


@pytest.mark.parametrize("block", ["plain", "c4"])
def test_progressive_inheritance_and_jitter(cpu_data, meta_default, block):
    from synthesis.search.inheritance import inherit, jitter_
    from synthesis.search.progressive import GrowthSettings, base_spec, grow

    data, _, d = cpu_data
    parent_spec = base_spec(len(d.class_names), d.image_size, d.n_extra, GrowthSettings(block=block))
    child_spec, _ = grow(parent_spec, 32)
    parent, child = build_model(parent_spec), build_model(child_spec)
    origin = inherit(parent, parent_spec, child, child_spec)
    assert "parent" in origin.values()
    before = child.stem[0].weight.clone()
    jitter_(child, 0.03, torch.Generator(device="cpu").manual_seed(1))
    assert not torch.equal(before, child.stem[0].weight)


@pytest.mark.parametrize("block", ["c4", "d4"])
def test_an_equivariant_network_trains_and_exports_with_a_meta_default_device(cpu_data, meta_default, block):
    from synthesis.models.equivariant import plain_convolutions
    from synthesis.training.loop import train_model

    _, _, d = cpu_data
    model = build_model(spec_for(d, block))  # its filter banks are built on the weights' device at every step
    hist = train_model(model, d.train, TrainConfig(optimizer="sgd"), 1, normalizer=d.normalizer,
                       num_classes=len(d.class_names), val=d.val, mirror_pairs=d.mirror_pairs)
    assert np.isfinite(hist.last.val_loss)
    plain = plain_convolutions(model.eval())
    assert all(t.device == CPU for t in plain.state_dict().values())


def test_ground_truth_weights_are_saved_from_the_cpu(cpu_data, tmp_path, meta_default):
    from synthesis.full_training.rule import full_train
    from synthesis.full_training.settings import FullTrainingJob, FullTrainingSettings

    _, _, d = cpu_data
    attrs = {"arch": spec_for(d).to_dict(), "train_config": TrainConfig(optimizer="sgd").to_dict()}
    settings = FullTrainingSettings(study_name="s", storage_url=f"sqlite:///{tmp_path / 'study.db'}", results_dir=tmp_path,
                                    weights_dir=tmp_path / "gt", precision="fp32", device="cpu", epochs=1, seeds=(0,),
                                    progress=False)
    result = full_train(settings, FullTrainingJob(0, 0), attrs, d)
    assert 0 <= result.record.accuracy <= 1
    payload = torch.load(result.record.weights_path, map_location="cpu", weights_only=True)
    assert all(v.device == CPU for v in payload["state_dict"].values())


def test_the_whole_pipeline_with_a_meta_default_device(tmp_path, meta_default):
    """synth (TPE and progressive), export (full training, TorchScript, ONNX, latency), predict with TTA and embeddings."""
    from galaxy_synth.cli import main

    tiny = ["--results", str(tmp_path), "--no-progress", "--device", "cpu"]
    data = ["--size", "16", "--synthetic-n", "120", "--max-samples", "40", "--val-subset", "20"]
    assert main(["synth", "--trials", "2", "--study", "tpe", *data, *tiny]) == 0
    assert main(["synth", "--strategy", "progressive", "--objective", "val_acc", "--max-blocks", "2", "--study", "grow",
                 *data, *tiny]) == 0
    assert main(["export", "--top", "1", "--full-epochs", "1", "--study", "tpe", *tiny]) == 0
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(images / "a.png")
    (tmp_path / "extra.csv").write_text("file,z,z_err\na.png,0.1,0.01\n")
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(tmp_path / "studies" / "tpe" / "models" / "rank1"), "--tta", "--extra", str(tmp_path / "extra.csv"),
                 "--embeddings", "-o", str(out), str(images)]) == 0
    assert out.is_file() and np.load(tmp_path / "pred.csv.embeddings.npy").shape[0] == 1
