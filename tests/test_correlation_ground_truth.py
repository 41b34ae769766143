import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import correlation.full_training as ground_truth_mod
from correlation.calibrate import calibrate_study
from correlation.selection import select_for_ground_truth
from correlation.store import open_ground_truth
from synthesis.models.builder import build_model
from synthesis.models.spec import ArchSpec
from synthesis.search.runner import run_study
from synthesis.settings import StudySettings


def test_selection_takes_the_top_and_spreads_over_the_range():
    scores = pd.Series(np.arange(100.0), index=np.arange(100) + 1000)
    chosen = select_for_ground_truth(scores, k=10, top=3)
    assert len(chosen) == len(set(chosen)) == 10
    assert {1099, 1098, 1097} <= set(chosen)
    picked = scores[chosen]
    assert picked.min() < 10 and ((picked > 30) & (picked < 70)).any()  # bottom and middle are represented
    assert select_for_ground_truth(scores.iloc[:5], k=10) == [1004, 1003, 1002, 1001, 1000]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("gt")
    settings = StudySettings(size=32, synthetic_n=200, max_samples=80, val_subset=40, epochs=1, trials=7,
                             results=str(root), max_params=150_000, progress=False, study="gt", objective="val_acc")
    run_study(settings)
    return root, settings.storage_url


def run(root, url, **kw):
    args = dict(ground_truth=6, top=2, full_epochs=1, folds=5, repeats=2, progress=False)
    if "save_ground_truth" in kw:
        kw["save_ground_truth"] = Path(kw["save_ground_truth"])
    return calibrate_study(url, "gt", root, **{**args, **kw})


def test_ground_truth_resumes_after_an_interruption_and_is_reused(tiny_study, monkeypatch):
    root, url = tiny_study
    real = ground_truth_mod.full_train
    calls = []

    def dies_on_third(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is stopped while training the third model
        calls.append(args[1])  # full_train(study_name, trial_number, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(ground_truth_mod, "full_train", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run(root, url)
    store = open_ground_truth(url)
    assert sorted(store.table("gt")["trial_number"]) == sorted(calls)  # both finished models were stored

    again = []
    monkeypatch.setattr(ground_truth_mod, "full_train", lambda *a, **k: again.append(a[1]) or real(*a, **k))
    report, written = run(root, url)
    assert len(again) == 4 and not set(again) & set(calls)  # only the missing four were trained
    assert report["n_rows"] == 6 and report["protocol"]["kind"] == "leave-one-out"
    assert {"accuracy", "balanced_accuracy", "macro_f1"} <= set(report["ground_truth"][0])
    assert "seed_weights_cv" in report and "val_acc_alone" in report
    assert set(report["other_targets"]) == {"balanced_accuracy", "macro_f1"}

    monkeypatch.setattr(ground_truth_mod, "full_train", lambda *a, **k: pytest.fail("retrained an existing ground truth"))
    run(root, url)  # everything reused
    assert len(open_ground_truth(url).table("gt")) == 6


def test_full_trained_weights_load_safely_and_reproduce_the_stored_accuracy(tiny_study):
    from synthesis.data.preprocessing import ExtraScaler, Normalizer
    from synthesis.search.study import reopen_study
    from synthesis.training.loop import evaluate

    root, url = tiny_study
    table = open_ground_truth(url).table("gt")
    if table.empty:
        run(root, url)
        table = open_ground_truth(url).table("gt")
    row = table.iloc[0]
    payload = torch.load(row["weights_path"], weights_only=True)  # no code can run on load
    model = build_model(ArchSpec.from_dict(payload["arch"]))
    model.load_state_dict(payload["state_dict"])
    opened = reopen_study(url, "gt", root, progress=False)
    prep = opened.prepared()
    prep.extra_scaler = ExtraScaler(**payload["extra_scaler"])  # as the weights file says
    test = prep.split("test", torch.device("cpu"))
    again = evaluate(model, test, Normalizer(**payload["normalizer"]), len(payload["class_names"]),
                     precision=opened.settings.precision)  # as full training evaluated it
    assert again.accuracy == pytest.approx(row["accuracy"])
    assert again.confusion == json.loads(row["confusion_json"])


def test_several_seeds_train_each_architecture_per_seed_and_fit_on_the_mean(tiny_study, monkeypatch):
    root, url = tiny_study
    run(root, url)  # seed 0 for all six (reused if an earlier test made them)
    real = ground_truth_mod.full_train
    trained = []
    monkeypatch.setattr(ground_truth_mod, "full_train", lambda *a, **k: trained.append((a[1], a[5])) or real(*a, **k))
    report, _ = run(root, url, seeds=2)
    assert len(trained) == 6 and {s for _, s in trained} == {1}  # only the new seed was trained
    assert report["ground_truth_seeds"] == [0, 1] and report["n_rows"] == 6
    gt = open_ground_truth(url).table("gt", 1)
    for row in report["ground_truth"]:
        both = gt[gt["trial_number"] == row["trial"]]
        assert sorted(both["seed"]) == [0, 1]
        assert row["accuracy"] == pytest.approx(both["accuracy"].mean())
        assert row["full_train_seconds"] == pytest.approx(both["wall_seconds"].sum())


@pytest.mark.parametrize("kw, message", [({"ground_truth": 5}, "--ground-truth 5"), ({"seeds": 0}, "--seeds must be >= 1"),
                                         ({"full_epochs": 0}, "--full-epochs must be >= 1")])
def test_requests_no_report_can_come_from_fail_before_any_training(tiny_study, monkeypatch, kw, message):
    from synthesis.errors import GalaxySynthError

    root, url = tiny_study
    monkeypatch.setattr(ground_truth_mod, "full_train", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(GalaxySynthError, match=message):
        run(root, url, **kw)


def test_every_full_training_is_written_as_rows_that_outlive_the_results_folder(tiny_study, tmp_path):
    from correlation.tables import mean_rows_over_seeds, read_ground_truth_tables

    root, url = tiny_study
    keep = tmp_path / "kept" / "gt.csv"
    report, written = run(root, url, save_ground_truth=keep)
    rows = pd.read_csv(keep)
    assert {"dataset", "arch_json", "train_config_json", "trial_schedule", "trial_precision", "gt_seed", "full_epochs",
            "accuracy", "balanced_accuracy", "tse", "zc_synflow"} <= set(rows.columns)
    assert len(rows) == len(open_ground_truth(url).table("gt")) and (root / "studies" / "gt" / "ground_truth_rows.csv").is_file()
    again = read_ground_truth_tables([keep])
    assert len(mean_rows_over_seeds(again, 1)) == rows["trial"].nunique()
    run(root, url, save_ground_truth=keep)  # merging the same rows again replaces, never duplicates
    assert len(pd.read_csv(keep)) == len(rows)


def test_another_study_reuses_a_full_training_of_the_same_architecture(tiny_study, monkeypatch):
    from correlation.full_training import stored_or_trained
    from synthesis.search.study import reopen_study

    root, url = tiny_study
    run(root, url)
    opened = reopen_study(url, "gt", root, progress=False)
    store = open_ground_truth(url)
    row = store.table("gt").iloc[0]
    trial = next(t for t in opened.study.get_trials() if t.number == int(row["trial_number"]))
    monkeypatch.setattr(ground_truth_mod, "full_train", lambda *a, **k: pytest.fail("trained again"))
    record, _, trained = stored_or_trained(store, "another-study", 7, trial.user_attrs, opened.prepared(), int(row["epochs"]),
                                           int(row["seed"]), opened.device, root / "gt2", opened.settings.precision)
    assert not trained and record.accuracy == pytest.approx(row["accuracy"]) and record.study_name == "another-study"
