import json

import pytest
import torch

import synthesis.full_training.rule as rule_mod
from synthesis.full_training.store import open_ground_truth
from synthesis.models.builder import build_model
from synthesis.models.spec import ArchSpec
from tests.helpers import calibrate_tiny


def test_ground_truth_resumes_after_an_interruption_and_is_reused(tiny_study, monkeypatch):
    root, url = tiny_study
    real = rule_mod.full_train
    calls = []

    def dies_on_third(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is stopped while training the third model
        calls.append(args[1].trial)  # full_train(settings, job, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(rule_mod, "full_train", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        calibrate_tiny(root, url)
    store = open_ground_truth(url)
    assert sorted(store.table("gt")["trial_number"]) == sorted(calls)  # both finished models were stored

    again = []
    monkeypatch.setattr(rule_mod, "full_train", lambda *a, **k: again.append(a[1].trial) or real(*a, **k))
    report, written = calibrate_tiny(root, url)
    assert len(again) == 4 and not set(again) & set(calls)  # only the missing four were trained
    assert report["n_rows"] == 6 and report["protocol"]["kind"] == "leave-one-out"
    assert {"accuracy", "balanced_accuracy", "macro_f1"} <= set(report["ground_truth"][0])
    assert "seed_weights_cv" in report and "val_acc_alone" in report
    assert set(report["other_targets"]) == {"balanced_accuracy", "macro_f1"}

    monkeypatch.setattr(rule_mod, "full_train", lambda *a, **k: pytest.fail("retrained an existing ground truth"))
    calibrate_tiny(root, url)  # everything reused
    assert len(open_ground_truth(url).table("gt")) == 6


def test_full_trained_weights_load_safely_and_reproduce_the_stored_accuracy(tiny_study):
    from synthesis.data.preprocessing import PreprocessingConfig
    from synthesis.search.study import reopen_study
    from synthesis.training.loop import evaluate

    root, url = tiny_study
    table = open_ground_truth(url).table("gt")
    if table.empty:
        calibrate_tiny(root, url)
        table = open_ground_truth(url).table("gt")
    row = table.iloc[0]
    payload = torch.load(row["weights_path"], weights_only=True)  # no code can run on load
    model = build_model(ArchSpec.from_dict(payload["arch"]))
    model.load_state_dict(payload["state_dict"])
    opened = reopen_study(url, "gt", root, progress=False)
    prep = opened.prepared()
    config = PreprocessingConfig.from_dict(payload["preprocessing"])  # the one config the weights carry
    prep.extra_scaler = config.extra_scaler()
    test = prep.split("test", torch.device("cpu"))
    again = evaluate(model, test, config.normalizer(), len(config.class_names),
                     precision=opened.settings.precision)  # as full training evaluated it
    assert again.accuracy == pytest.approx(row["accuracy"])
    assert again.confusion == json.loads(row["confusion_json"])


def test_another_study_reuses_a_full_training_of_the_same_architecture(tiny_study, monkeypatch):
    from dataclasses import replace

    from synthesis.full_training.rule import stored_or_trained
    from synthesis.full_training.settings import FullTrainingJob, FullTrainingSettings
    from synthesis.search.study import reopen_study

    root, url = tiny_study
    calibrate_tiny(root, url)
    opened = reopen_study(url, "gt", root, progress=False)
    store = open_ground_truth(url)
    row = store.table("gt").iloc[0]
    trial = next(t for t in opened.study.get_trials() if t.number == int(row["trial_number"]))
    monkeypatch.setattr(rule_mod, "full_train", lambda *a, **k: pytest.fail("trained again"))
    training = replace(FullTrainingSettings.of(opened.settings, int(row["epochs"])), study_name="another-study",
                       weights_dir=root / "gt2")
    record, _, trained = stored_or_trained(store, training, FullTrainingJob(7, int(row["seed"])), trial.user_attrs,
                                           opened.prepared())
    assert not trained and record.accuracy == pytest.approx(row["accuracy"]) and record.study_name == "another-study"
