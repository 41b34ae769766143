"""What counts toward --trials: finished trials, the ones running ahead, and who yields."""


import optuna
import pytest

from synthesis.search.trials import surplus_trial
from tests.helpers import heartbeat_study


@pytest.fixture(autouse=True)
def _quiet_ask_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")  # we ask() on purpose
        yield


def test_surplus_trial_yields_to_earlier_running_trials(tmp_path):
    study, _ = heartbeat_study(tmp_path)
    for _ in range(2):
        study.tell(study.ask(), 1.0)
    running = [study.ask() for _ in range(2)]  # numbers 2 and 3
    assert not surplus_trial(study, running[0].number, 3)  # 2 COMPLETE + none ahead of #2
    assert surplus_trial(study, running[1].number, 3)  # #2 is ahead of #3: #3 is one too many
    assert not surplus_trial(study, running[1].number, 4)


def test_a_trial_ending_behind_others_that_fill_the_target_yields_instead_of_completing(tmp_path):
    from synthesis.search.trials import yield_if_surplus

    study, _ = heartbeat_study(tmp_path)
    study.tell(study.ask(), 1.0)
    first, second = study.ask(), study.ask()  # both started while there was room (the start check can race)
    with pytest.raises(optuna.TrialPruned):
        yield_if_surplus(second, 2)  # #1 (running, lower) + 1 COMPLETE fill a target of 2: #2 yields
    yield_if_surplus(first, 2)  # nothing ahead of #1 but the completed trial: it may finish
    assert second.user_attrs["prune_reason"].startswith("surplus")


def test_finished_means_complete_or_stopped_at_a_rung(tmp_path):
    from optuna.trial import TrialState

    from synthesis.search.trials import finished, finished_count

    study, _ = heartbeat_study(tmp_path)
    study.tell(study.ask(), 1.0)
    stopped = study.ask()
    stopped.set_user_attr("rung_stopped", True)
    study.tell(stopped, state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.PRUNED)  # pruned for another reason (a cap): not finished
    assert [finished(t) for t in study.get_trials()] == [True, True, False]
    assert finished_count(study) == 2
