"""The one preparation step: split plan from the seed, statistics from the train split, tensors on a device."""

import numpy as np
import torch

from synthesis.data.dataset import load_dataset
from synthesis.data.preparation import PreparedData, TrialData, data_plan
from synthesis.data.settings import DataSettings
from synthesis.settings import StudySettings


def test_plan_is_seeded_disjoint_and_bounded():
    data = load_dataset(None, size=16, synthetic_n=200, progress=False)
    s = DataSettings.of(StudySettings(max_samples=50, val_subset=20))
    plan = data_plan(data, s)
    assert plan == data_plan(data, s)  # same seed, same split
    train, val, test = (set(plan[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test) and len(train | val | test) == len(data)
    assert set(plan["trial_train"]) <= train and len(plan["trial_train"]) == 50 and len(plan["trial_val"]) == 20


def test_stored_statistics_win_over_refitting_and_only_the_needed_rows_reach_the_device():
    data = load_dataset(None, size=16, synthetic_n=200, progress=False)
    plan = data_plan(data, DataSettings.of(StudySettings(max_samples=50, val_subset=20)))
    fresh = PreparedData.from_plan(data, plan)
    stored = fresh.statistics()
    stored["mean"] = [0.5, 0.5, 0.5]
    again = PreparedData.from_plan(data, plan, stored)
    assert again.normalizer.mean == (0.5, 0.5, 0.5) and fresh.normalizer.mean != (0.5, 0.5, 0.5)
    trial = TrialData.on_device(fresh, torch.device("cpu"))
    assert len(trial.train) == 50 and len(trial.val) == 20 and trial.train.x.dtype == torch.uint8
    assert np.array_equal(trial.train.y.numpy(), data.labels[plan["trial_train"]])
