"""What counts toward --trials: finished trials, the running ones ahead, and the surplus rule.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState


def completed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def finished(trial: optuna.trial.FrozenTrial) -> bool:
    """Counts toward ``--trials``: COMPLETE, or stopped by promotion at a budget (its evaluation is over)."""
    return trial.state == TrialState.COMPLETE or (trial.state == TrialState.PRUNED and bool(trial.user_attrs.get("rung_stopped")))


def finished_count(study: optuna.Study) -> int:
    return sum(finished(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def surplus_trial(study: optuna.Study, number: int, target: int) -> bool:
    """True when finished trials plus RUNNING ones started before ``number`` already reach ``target``.

    The backstop against two workers starting the last trial at the same moment: the later one
    (higher number) yields, so the study ends with exactly ``target`` finished trials.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    ahead = sum(1 for t in trials if finished(t) or (t.state == TrialState.RUNNING and t.number < number))
    return ahead >= target


def yield_if_surplus(trial: optuna.Trial, target: int) -> None:
    """Prune the trial if finished trials plus those running ahead of it already fill the target.

    Checked when a trial starts and again when it is about to count as finished: the start check
    can miss a lower-numbered trial whose creation another worker had not yet committed (PostgreSQL, read committed: three workers once finished 10 trials for a
    target of 9). By the time a trial ends, every lower-numbered trial is visible, and of two trials
    ending together the higher-numbered one always sees the other (running or finished) and yields.
    """
    from synthesis.search.trials import surplus_trial

    if surplus_trial(trial.study, trial.number, target):
        trial.set_user_attr("prune_reason", f"surplus: trials ahead of it already reach --trials {target}")
        raise optuna.TrialPruned("surplus trial")
