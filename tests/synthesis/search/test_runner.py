"""Running a study to its target from any number of workers."""

import time

import optuna
from optuna.trial import TrialState

from synthesis.search.runner import optimize_to_target
from tests.helpers import heartbeat_study


def test_optimize_to_target_waits_for_a_dead_workers_trial_then_runs_its_retry(tmp_path):
    study, storage = heartbeat_study(tmp_path)
    study.tell(study.ask(), 0.5)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(dead._trial_id)  # then silence: its worker "died"
    ran = []

    def objective(trial):
        ran.append(trial.number)
        return trial.suggest_float("x", 0, 1)

    t0 = time.time()
    optimize_to_target(study, objective, target=2, max_attempts=5, poll_seconds=0.2)
    trials = study.get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2  # exactly the target
    assert trials[dead.number].state == TrialState.FAIL
    retry = trials[ran[0]]
    assert retry.system_attrs.get("failed_trial") == dead.number and retry.params == dead.params
    assert len(ran) == 1 and time.time() - t0 >= 1.5  # it waited out the grace period instead of overshooting
