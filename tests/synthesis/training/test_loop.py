import math

import numpy as np
import pytest
import torch
from torch import nn

from synthesis.data.dataset import load_dataset
from synthesis.data.preparation import build_trial_data, data_plan
from synthesis.data.settings import DataSettings
from synthesis.models.builder import build_model
from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig
from synthesis.settings import StudySettings
from synthesis.training.loop import TrainingDiverged, evaluate, train_model


@pytest.fixture(scope="module")
def trial_data(tmp_path_factory):
    data = load_dataset(None, size=32, synthetic_n=240, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    plan = data_plan(data, DataSettings.of(StudySettings(max_samples=120, val_subset=48)))
    return build_trial_data(data, plan, torch.device("cpu"))


def small_spec(d):
    return ArchSpec(num_classes=len(d.class_names), stages=(StageSpec(1, 16), StageSpec(1, 32)), image_size=32, n_extra=d.n_extra)


def run(d, cfg=TrainConfig(lr=3e-3), epochs=2, seed=0, model=None):
    torch.manual_seed(seed)
    model = model or build_model(small_spec(d))
    return train_model(model, d.train, cfg, epochs, normalizer=d.normalizer, num_classes=len(d.class_names),
                       val=d.val, mirror_pairs=d.mirror_pairs, seed=seed), model


def test_records_everything_the_proxy_needs(trial_data):
    hist, _ = run(trial_data)
    assert len(hist.epochs) == 2
    e = hist.last
    steps = math.ceil(120 / 64)
    assert len(e.batch_losses) == len(e.batch_grad_norms) == len(e.batch_accs) == steps
    assert all(g > 0 for g in e.batch_grad_norms)
    assert 0 <= e.val_acc <= 1 and 0 <= e.val_balanced_acc <= 1 and e.val_loss > 0
    assert e.images_per_second > 0
    d = hist.to_dict()
    assert d["epochs"][1]["epoch"] == 2


def test_training_lowers_the_loss(trial_data):
    hist, _ = run(trial_data, epochs=6)
    assert hist.epochs[-1].train_loss < hist.epochs[0].train_loss


def without_timing(hist):
    skip = ("seconds", "images_per_second", "val_predicted_classes")  # the last one is newer than the reference loop
    return [{k: v for k, v in e.items() if k not in skip} for e in hist.to_dict()["epochs"]]


def test_same_seed_same_metrics_on_cpu(trial_data):
    a, _ = run(trial_data, seed=4)
    b, _ = run(trial_data, seed=4)
    c, _ = run(trial_data, seed=5)
    assert without_timing(a) == without_timing(b)
    assert without_timing(a) != without_timing(c)


class ExplodesAfter(nn.Module):
    def __init__(self, inner, calls):
        super().__init__()
        self.inner, self.calls = inner, calls

    def forward(self, x, extra=None):
        self.calls -= 1
        out = self.inner(x, extra)
        return out * float("nan") if self.calls < 0 else out


def test_nan_loss_raises_diverged_with_location(trial_data):
    model = ExplodesAfter(build_model(small_spec(trial_data)), calls=1)
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 2"):
        run(trial_data, model=model)








def test_evaluate_matches_manual_accuracy(trial_data):
    _, model = run(trial_data, epochs=1)
    res = evaluate(model, trial_data.val, trial_data.normalizer, len(trial_data.class_names), keep_probabilities=True)
    pred = res.probabilities.argmax(1)
    assert res.accuracy == pytest.approx(float((pred == trial_data.val.y.numpy()).mean()))
    assert np.allclose(res.probabilities.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("cfg", [TrainConfig(lr=3e-3), TrainConfig(optimizer="sgd", lr=1e-2, schedule="cosine"),
                                 TrainConfig(optimizer="rmsprop", lr=1e-3, loss="focal")])
def test_sync_free_loop_records_exactly_what_the_per_batch_sync_loop_recorded(trial_data, cfg):
    from tests._reference_training import reference_train_model

    d = trial_data
    kwargs = dict(normalizer=d.normalizer, num_classes=len(d.class_names), val=d.val, mirror_pairs=d.mirror_pairs, seed=7)
    torch.manual_seed(7)
    ours = train_model(build_model(small_spec(d)), d.train, cfg, 2, **kwargs)
    torch.manual_seed(7)
    reference = reference_train_model(build_model(small_spec(d)), d.train, cfg, 2, **kwargs)
    assert without_timing(ours) == without_timing(reference)


def test_cosine_schedule_anneals_to_zero(trial_data):
    hist, model = run(trial_data, cfg=TrainConfig(lr=1e-2, schedule="cosine"), epochs=2)
    assert hist.epochs[0].lr == pytest.approx(1e-2)
    assert hist.epochs[1].lr < 1e-2


def test_a_vote_head_trains_on_counts_and_evaluate_reports_each_questions_fraction_error(trial_data):
    from dataclasses import replace

    from synthesis.models.spec import OutputLayout

    d = trial_data
    k = len(d.class_names)
    torch.manual_seed(0)
    # two questions: a yes/no everyone answers (30 votes) and the class question, asked of the yes voters only
    def votes(split):
        yes = torch.randint(0, 31, (len(split),)).float()
        yes[::7] = 0  # some galaxies nobody called yes: their class question was not asked
        kind = torch.nn.functional.one_hot(split.y, k).float() * yes[:, None]  # all yes voters pick the true class
        return replace(split, votes=torch.cat([yes[:, None], 30 - yes[:, None], kind], dim=1))

    train, val = votes(d.train), votes(d.val)
    spec = replace(small_spec(d), votes=OutputLayout(0, (2, k), class_question=1))
    model = build_model(spec)
    hist = train_model(model, train, TrainConfig(lr=3e-3), 3, normalizer=d.normalizer, num_classes=k, val=val, seed=0)
    assert hist.epochs[-1].train_loss < hist.epochs[0].batch_losses[0]  # the Dirichlet-multinomial NLL falls
    ev = evaluate(model, val, d.normalizer, k)
    asked = int((val.votes[:, 0] > 0).sum())
    assert len(ev.question_mae) == 2 and asked < len(val)  # the class question is not asked where yes = 0
    assert ev.fraction_mae == pytest.approx(np.mean(ev.question_mae))
    assert hist.last.val_question_mae == pytest.approx(ev.question_mae)
    assert "val_question_mae" not in run(d, epochs=1)[0].to_dict()["epochs"][0]  # classifiers' histories as they were
