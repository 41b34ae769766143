"""Running a study to its target.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from proxies.guard import COLLAPSE_SHIFT
from synthesis.choices import objective_info
from synthesis.data.preparation import TrialData
from synthesis.search.objective import Objective
from synthesis.search.settings import TrialSettings
from synthesis.search.storage import masked, retry_callback
from synthesis.search.study import OpenedStudy, prepare_study
from synthesis.search.trials import finished, finished_count
from synthesis.settings import StudySettings

log = logging.getLogger("galaxy_synth")





class TrialsBar:
    """tqdm bar over completed trials (resumes from the stored count); says what its values are."""

    def __init__(self, target: int, done: int, objective: str, enabled: bool = True) -> None:
        from tqdm.auto import tqdm

        self.label = objective_info(objective).label
        self.bar = tqdm(total=target, initial=done, desc=f"trials ({self.label})", unit="trial", disable=not enabled,
                        dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if finished(trial):
            self.bar.update(1)
        best = None
        if len(study.directions) == 1:
            try:
                best = study.best_value
            except ValueError:
                pass
        if trial.values and trial.user_attrs.get("collapsed"):  # its value is a penalty, not a score
            last = "collapsed to one class (ranked last)"
        elif trial.values:
            last = f"{self.label} {trial.values[0]:.3f}"
        else:
            why = str(trial.user_attrs.get("prune_reason", "")).split(":")[0]
            last = trial.state.name.lower() + (f" ({why})" if why else "")
        text = f"#{trial.number} {last}"
        shown = best is not None and best > -COLLAPSE_SHIFT / 2  # a best that is itself a penalty is no best yet
        self.bar.set_postfix_str(f"{text} | best {self.label} {best:.3f}" if shown else text)

    def close(self) -> None:
        self.bar.close()


class _DropInterruptNoise(logging.Filter):
    """Optuna logs a Ctrl-C as a failed trial with a long traceback and a "Trial N failed with value None."
    line; the CLI says it in one line (our objective never returns None: that line is only ever a Ctrl-C)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "KeyboardInterrupt" not in message and "failed with value None" not in message


def requeue_interrupted(study: optuna.Study, number: int) -> None:
    """Put an interrupted trial back in the queue (FAIL + a WAITING copy, as for a dead worker)."""
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.state == TrialState.RUNNING:
        study.tell(number, state=TrialState.FAIL)
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.state == TrialState.FAIL and not any(t.system_attrs.get("failed_trial") == number for t in study.get_trials(deepcopy=False)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry_callback()(study, trial)


def optimize_to_target(study: optuna.Study, objective: Callable[[optuna.Trial], Any], target: int,
                       max_attempts: int, callbacks: Sequence[Callable] = (), poll_seconds: float = 2.0,
                       stop_when: Callable[[], bool] | None = None) -> None:
    """Run trials one at a time until the study holds ``target`` finished trials, from any worker.

    Finished: COMPLETE, or stopped at a promotion budget (:func:`finished`). Several processes may
    run this on one storage. A worker starts a trial only while finished + RUNNING < target; otherwise it waits, because a running trial may still die: its worker's
    heartbeat goes stale, Optuna fails it and queues a retry (WAITING), which the next free worker
    picks up. ``max_attempts`` bounds this worker's trials (every trial could be pruned);
    ``stop_when()`` returning True ends the run before the next trial (e.g. a CPU-time budget).
    """
    import time

    attempts = 0
    started: list[int] = []

    def remember(trial: optuna.Trial) -> Any:
        started.append(trial.number)
        return objective(trial)

    optuna_log = logging.getLogger("optuna.study._optimize")  # where Optuna logs a failed trial
    noise = _DropInterruptNoise()
    optuna_log.addFilter(noise)
    try:
        while attempts < max_attempts and not (stop_when is not None and stop_when()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial → FAIL + queued retry
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
            complete = sum(finished(t) for t in trials)
            if complete >= target:
                return
            if complete + sum(t.state == TrialState.RUNNING for t in trials) >= target:
                time.sleep(poll_seconds)
                continue
            try:
                study.optimize(remember, n_trials=1, callbacks=list(callbacks), gc_after_trial=False)
            except KeyboardInterrupt:
                if started:
                    requeue_interrupted(study, started[-1])
                raise
            attempts += 1
    finally:
        optuna_log.removeFilter(noise)


def run_study(settings: StudySettings, sampler: optuna.samplers.BaseSampler | None = None,
              pruner: optuna.pruners.BasePruner | None = None,
              on_ready: Callable[[OpenedStudy], None] | None = None,
              stop_when: Callable[[], bool] | None = None) -> optuna.Study:
    """Run (or resume) the study in this process until ``settings.trials`` trials are finished in total.

    ``sampler`` / ``pruner``: any Optuna sampler or pruner instead of the ones the settings name.
    ``stop_when()``: checked before each trial; True ends the run early (e.g. a time budget).
    (:func:`galaxy_synth.api.synth` decides between this and parallel worker processes.)
    """
    opened = prepare_study(settings, sampler=sampler, pruner=pruner)
    if on_ready is not None:
        on_ready(opened)
    return run_in_process(opened, stop_when)


def run_in_process(opened: OpenedStudy, stop_when: Callable[[], bool] | None = None) -> optuna.Study:
    """Trials of an opened study, one after another in this process, until the target is reached."""
    from synthesis.hardware.device import tune_allocator

    tune_allocator()
    s = opened.settings
    done = finished_count(opened.study)
    remaining = s.trials - done
    if remaining <= 0:
        return opened.study
    trial_data = TrialData.on_device(opened.prepared(), opened.device)
    log.info("study %r on %s: %s", s.study_name, masked(s.storage_url), opened.device)
    bar = TrialsBar(s.trials, done, s.objective, s.progress)
    try:
        optimize_to_target(opened.study, Objective(trial_data, TrialSettings.of(s), opened.attrs.get("calibration")), s.trials,
                           max_attempts=3 * remaining + 10, callbacks=[bar], poll_seconds=s.poll_seconds,
                           stop_when=stop_when)
    finally:
        bar.close()
    return opened.study
