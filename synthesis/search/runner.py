"""The one way a study runs, whatever its strategy: :func:`run_study`.

It opens the study (:func:`synthesis.search.study.prepare_study`, with the strategy's sampler and
pruner), decides the execution plan once (:func:`execution_for`), then either starts worker
processes (:func:`synthesis.search.workers.run_workers`, each of which runs this same function as
one process) or drives the strategy's trials here (:func:`drive_trials`: every trial of every
strategy goes through Optuna's ``Study.optimize``), and writes the outputs. The strategy
(:mod:`synthesis.search.strategy`) is picked from the settings by :func:`strategy_for`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from synthesis.data import TrialData
from synthesis.hardware import ExecutionPlan
from synthesis.search.storage import masked, retry_callback
from synthesis.search.strategy import Next, SampledSearch, Strategy
from synthesis.search.study import OpenedStudy, prepare_study
from synthesis import StudySettings

log = logging.getLogger("galaxy_synth")


@dataclass
class StudyRun:
    """What :func:`run_study` did: the study, the settings it ran with (no "auto" left), the strategy, the files written."""

    study: optuna.Study
    settings: StudySettings
    strategy: Strategy
    written: list[Path]

    @property
    def outcome(self) -> Any:
        """What the strategy found beyond the trials (progressive growth: its steps and why it stopped)."""
        return self.strategy.outcome


def strategy_for(settings: StudySettings, sampler: optuna.samplers.BaseSampler | None = None,
                 pruner: optuna.pruners.BasePruner | None = None) -> Strategy:
    """The strategy ``settings.strategy`` names; ``sampler`` / ``pruner``: Optuna objects instead of the settings' own."""
    if settings.strategy == "progressive":
        from synthesis.search.progressive import GrowthSettings, ProgressiveGrowth

        return ProgressiveGrowth(GrowthSettings.of(settings), sampler, pruner)
    if settings.strategy == "calibrating":
        from synthesis.search.calibrating import CalibratingSearch

        return CalibratingSearch(sampler, pruner)
    return SampledSearch(sampler, pruner)


def run_study(settings: StudySettings, strategy: Strategy | None = None, *,
              on_ready: Callable[[OpenedStudy], None] | None = None, stop_when: Callable[[], bool] | None = None,
              write_outputs: bool = False) -> StudyRun:
    """Run (or resume) a study with ``strategy`` (default: :func:`strategy_for` the settings).

    ``on_ready(opened)``: once the study is checked and open, before any training;
    ``opened.execution`` says how it will run. ``stop_when()``: checked before each trial; True
    ends the run early (e.g. a CPU-time budget). ``write_outputs``: at the end, the study's tables and
    plots (and the strategy's own, e.g. the growth report) in its folder, as ``galaxy-synth synth`` does.
    """
    from synthesis.hardware import set_torch_threads
    from synthesis.hardware import tune_allocator

    if strategy is None:
        strategy = strategy_for(settings)  # a bad --growth-widths is one line here, before any data is loaded
    tune_allocator()
    opened = prepare_study(settings.replace(strategy=strategy.setting), sampler=strategy.sampler, pruner=strategy.pruner)
    s = opened.settings
    plan = opened.execution = execution_for(opened, strategy, stop_when)
    if on_ready is not None:
        on_ready(opened)
    study = opened.study
    if plan.workers > 1 and (strategy.remaining(study, s) or 0) > 0:
        from synthesis.search.storage import load_existing_study
        from synthesis.search.workers import run_workers

        run_workers(s, plan)
        study = load_existing_study(s.study_name, s.storage_url)
    else:
        set_torch_threads(plan.threads)
        run_in_process(opened, strategy, stop_when)
    return StudyRun(study, s, strategy, strategy.write_outputs(study, s) if write_outputs else [])


def execution_for(opened: OpenedStudy, strategy: Strategy, stop_when: Callable[[], bool] | None = None) -> ExecutionPlan:
    """How the run spends its cores (:func:`synthesis.hardware.cores.execution_plan`), decided here once.

    A strategy that is one sequence of work gets one process with every allotted core as threads.
    Otherwise ``settings.workers`` processes, or by default the plan for the trials still to run;
    but one process where Python objects were given (they do not travel to other processes).
    """
    from synthesis.hardware import allotted_cores, execution_plan

    allotment, s, device = allotted_cores(), opened.settings, opened.device.type
    if not strategy.parallel:
        return execution_plan(device, allotment, parallel=False)
    objects = strategy.given_objects() + (["stop_when"] if stop_when is not None else [])
    if objects and s.workers is None:
        return ExecutionPlan(1, 1 if device == "cpu" else allotment.cores,
                             f"{', '.join(objects)} given as Python objects: this process only")
    return execution_plan(device, allotment, s.workers, jobs=strategy.remaining(opened.study, s))


def run_in_process(opened: OpenedStudy, strategy: Strategy, stop_when: Callable[[], bool] | None = None) -> None:
    """The strategy's trials of an opened study, one after another in this process."""
    s = opened.settings
    remaining = strategy.remaining(opened.study, s)
    if remaining is not None and remaining <= 0:
        return
    trial_data = TrialData.on_device(opened.prepared(), opened.device)
    log.info("study %r on %s: %s", s.study_name, masked(s.storage_url), opened.device)
    opened.study.sampler = strategy.wrap_sampler(opened.study.sampler)
    objective = strategy.start(opened, trial_data)
    try:
        drive_trials(opened.study, strategy, objective, poll_seconds=s.poll_seconds, stop_when=stop_when)
    finally:
        strategy.close()


def drive_trials(study: optuna.Study, strategy: Strategy, objective: Callable[[optuna.Trial], Any],
                 poll_seconds: float = 2.0, stop_when: Callable[[], bool] | None = None) -> None:
    """Every trial of every strategy: one ``Study.optimize`` trial at a time, while the strategy proposes them.

    Before each: a dead worker's trial is failed and queued again (Optuna's heartbeats), then the
    strategy says run, wait or stop; after each, ``strategy.after_trial``. Ctrl-C re-queues the
    interrupted trial (FAIL + a WAITING copy, as for a dead worker). ``stop_when()`` True ends the
    run before the next trial.
    """
    started: list[int] = []

    def remember(trial: optuna.Trial) -> Any:
        started.append(trial.number)
        return objective(trial)

    optuna_log = logging.getLogger("optuna.study._optimize")  # where Optuna logs a failed trial
    noise = _DropInterruptNoise()
    optuna_log.addFilter(noise)
    try:
        while not (stop_when is not None and stop_when()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial → FAIL + queued retry
            proposal = strategy.next_trial(study)
            if proposal is Next.STOP:
                return
            if proposal is Next.WAIT:
                time.sleep(poll_seconds)
                continue
            try:
                study.optimize(remember, n_trials=1, callbacks=[strategy.after_trial], gc_after_trial=False)
            except KeyboardInterrupt:
                if started:
                    requeue_interrupted(study, started[-1])
                raise
    finally:
        optuna_log.removeFilter(noise)


class _DropInterruptNoise(logging.Filter):
    """Optuna logs a Ctrl-C as a failed trial with a long traceback and a "Trial N failed with value None."
    line; the CLI says it in one line (our objectives never return None: that line is only ever a Ctrl-C)."""

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
