"""Scorer versions: the evidence they are fitted on, and their life in the study's storage."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from synthesis.search.scorer_versions import (
    CURRENT_KEY,
    SIGNALS_ATTR,
    ScorerVersion,
    current_version,
    label_of,
    refit,
    rung_evidence,
    store_version,
    stored_versions,
)
from synthesis.search.self_calibration import MIN_EVIDENCE

RUNGS = [2, 6, 18]


def prior(rung, metrics):
    return metrics["val_acc"]


def _trial(number_seed: int, reached: list[int], state=TrialState.PRUNED) -> optuna.trial.FrozenTrial:
    """A trial that reached the budgets ``reached``; its 2-epoch ``tse`` predicts its final log-loss, nothing else does."""
    rng = np.random.default_rng(number_seed)
    quality = rng.normal()
    signals = {str(b): {"metrics": {"tse": -quality + 0.05 * rng.normal(), "train_loss": rng.normal(),
                                    "val_acc": rng.uniform(0.6, 0.9), "val_balanced_acc": 0.8,
                                    "val_predicted_classes": 2.0, "val_loss": 1.0 - 0.1 * quality * b / 18}}
               for b in reached}
    value = 0.8 if state == TrialState.COMPLETE else None
    return create_trial(state=state, value=value, user_attrs={SIGNALS_ATTR: signals, "rung_stopped": state != TrialState.COMPLETE})


def test_evidence_is_the_trials_that_went_on_labelled_at_their_highest_rung():
    trials = [_trial(0, [2]), _trial(1, [2, 6]), _trial(2, [2, 6, 18], TrialState.COMPLETE)]
    for number, t in enumerate(trials):
        t.number = number
    first = rung_evidence(trials, RUNGS, 0, prior, num_classes=2)
    assert first.trials == [1, 2]  # trial 0 stopped at the first rung: no label above it
    assert first.labels[1] == -trials[2].user_attrs[SIGNALS_ATTR]["18"]["metrics"]["val_loss"] == label_of(trials[2], 2)
    assert rung_evidence(trials, RUNGS, 1, prior, num_classes=2).trials == [2]
    assert math.isnan(label_of(create_trial(state=TrialState.COMPLETE, value=1.0), 2))
    collapsed = _trial(3, [2, 6])
    collapsed.user_attrs[SIGNALS_ATTR]["6"]["metrics"]["val_predicted_classes"] = 1.0
    assert label_of(collapsed, 2) < -5  # predicts one class at its highest rung: below every model that learned


def test_refit_makes_a_new_version_only_when_the_evidence_grew():
    trials = [_trial(i, [2, 6]) for i in range(30)]
    for number, t in enumerate(trials):
        t.number = number
    first = refit(trials[:MIN_EVIDENCE - 2], RUNGS, ScorerVersion(), prior, num_classes=2)
    assert first.number == 1 and first.choice(2).chosen == "prior" and "thin" in first.choice(2).why
    assert refit(trials[:MIN_EVIDENCE - 2], RUNGS, first, prior, num_classes=2) is None  # nothing new: no version
    second = refit(trials, RUNGS, first, prior, num_classes=2)
    assert second.number == 2 and second.fitted_on == list(range(30))
    assert second.choice(2).chosen == "fit"  # tse predicts the 6-epoch log-loss; val_acc (the prior) does not
    assert second.choice(6).evidence == 0  # nothing reached 18


def test_a_version_is_frozen_in_the_storage_and_read_back_by_another_process(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="v", storage=url)
    trials = [_trial(i, [2, 6]) for i in range(30)]
    for number, t in enumerate(trials):
        t.number = number
    version = refit(trials, RUNGS, current_version(study), prior, num_classes=2)
    store_version(study, version)
    probe = trials[3].user_attrs[SIGNALS_ATTR]["2"]["metrics"]
    here = version.score(0, 2, probe, prior, 2)
    code = ("import json, optuna, sys\n"
            "from synthesis.search.scorer_versions import current_version\n"
            f"study = optuna.load_study(study_name='v', storage={url!r})\n"
            "v = current_version(study)\n"
            f"print(json.dumps([v.number, v.choice(2).chosen, v.score(0, 2, {probe!r}, lambda r, m: m['val_acc'], 2)]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    number, chosen, there = json.loads(out.stdout.strip().splitlines()[-1])
    assert (number, chosen) == (1, "fit") and there == here
    assert study.user_attrs[CURRENT_KEY] == 1 and [v["version"] for v in stored_versions(study)] == [1]
    assert stored_versions(study)[0]["rungs"]["2"]["proxy"]["format"].startswith("galaxy-synth-composite-proxy")
