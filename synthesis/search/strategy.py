"""What a search does, as one object that the runner (:func:`synthesis.search.runner.run_study`) drives.

As Optuna hands a sampler and a pruner to ``Study.optimize``, every search strategy is a
:class:`Strategy`: the sampler and pruner its trials use, what a trial does (its objective),
whether several worker processes may share it, which trial comes next (or wait, or stop), what
it does after each trial, and what it writes at the end. The runner does the rest, once for all
of them: open the study, decide the execution plan, start worker processes, run every trial
through ``Study.optimize``, requeue an interrupted trial, retry a dead worker's.

:class:`SampledSearch` is the search where each trial samples a whole architecture (TPE, random;
pruned by the median rule or promoted by successive halving). Progressive growth is
:class:`synthesis.search.progressive.ProgressiveGrowth`. A new strategy extends :class:`Strategy`
(e.g. wraps the study's sampler in :meth:`Strategy.wrap_sampler` and refits something in
:meth:`Strategy.after_trial`) and gets a line in :func:`synthesis.search.runner.strategy_for`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Callable, ClassVar

import optuna
from optuna.trial import TrialState

from proxies import COLLAPSE_SHIFT
from synthesis import objective_info
from synthesis.data import TrialData
from synthesis.search.objective import Objective
from synthesis.search.settings import TrialSettings
from synthesis.search.study import OpenedStudy
from synthesis.search.trials import finished, finished_count
from synthesis import StudySettings


class Next(Enum):
    """A strategy's answer to "what now?" before each trial."""

    RUN = "run"  # run one trial now
    WAIT = "wait"  # nothing to start yet (e.g. a running trial may still die and be retried): ask again shortly
    STOP = "stop"  # the search is over


class Strategy:
    """A search strategy: the defaults are those of one that needs nothing more.

    The runner calls, in order: :meth:`wrap_sampler` and :meth:`start` once the study is open, then
    :meth:`next_trial` before each trial and :meth:`after_trial` after it (an Optuna callback),
    then :meth:`close`, and :meth:`write_outputs` at the end.
    """

    setting: ClassVar[str] = "tpe"  # its --strategy value (a frozen setting of the study)
    parallel: ClassVar[bool] = True  # several worker processes may run it on one study
    outcome: Any = None  # what it found beyond the trials themselves (progressive growth: its steps)

    def __init__(self, sampler: optuna.samplers.BaseSampler | None = None,
                 pruner: optuna.pruners.BasePruner | None = None) -> None:
        self.sampler = sampler  # None: the settings' sampler, seeded for the resume and the worker
        self.pruner = pruner  # None: the settings' pruner

    def given_objects(self) -> list[str]:
        """The Python objects a user gave it (they cannot travel to worker processes)."""
        return [name for name, value in (("sampler", self.sampler), ("pruner", self.pruner)) if value is not None]

    def wrap_sampler(self, sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
        """The sampler the trials use, given the study's own: e.g. a wrapper that re-scores finished trials."""
        return sampler

    def remaining(self, study: optuna.Study, settings: StudySettings) -> int | None:
        """Trials still to run toward a target; None when the strategy decides by itself when it stops."""
        return None

    def start(self, opened: OpenedStudy, data: TrialData) -> Callable[[optuna.Trial], Any]:
        """Get ready to run trials of ``opened`` on ``data``; return the objective every trial runs."""
        raise NotImplementedError

    def next_trial(self, study: optuna.Study) -> Next:
        """Before each trial: run one (after queueing it, if the strategy fixes what it is), wait, or stop."""
        raise NotImplementedError

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """After each trial this process ran, whatever its state."""

    def close(self) -> None:
        """The run is over (or interrupted): close progress bars."""

    def write_outputs(self, study: optuna.Study, settings: StudySettings) -> list[Path]:
        """The study's tables and plots (and the strategy's own), in its folder; the paths written."""
        from synthesis.search.plots import write_study_outputs
        from synthesis.search.study import find_calibration

        proxy, _ = find_calibration(settings.calibration, settings.results_dir)
        return write_study_outputs(study, settings.study_dir, proxy)


class TrialTarget:
    """Trials one at a time until the study holds ``target`` finished trials, from any worker.

    Finished: COMPLETE, or stopped at a promotion budget (:func:`finished`). Several processes may
    run on one storage. A worker starts a trial only while finished + RUNNING < target; otherwise it
    waits, because a running trial may still die: its worker's heartbeat goes stale, Optuna fails
    it and queues a retry (WAITING), which the next free worker picks up. ``max_attempts`` bounds
    this process's trials (every trial could be pruned).
    """

    def __init__(self, target: int, max_attempts: int) -> None:
        self.target = target
        self.attempts_left = max_attempts

    def __call__(self, study: optuna.Study) -> Next:
        if self.attempts_left <= 0:
            return Next.STOP
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        complete = sum(finished(t) for t in trials)
        if complete >= self.target:
            return Next.STOP
        if complete + sum(t.state == TrialState.RUNNING for t in trials) >= self.target:
            return Next.WAIT
        self.attempts_left -= 1
        return Next.RUN


class SampledSearch(Strategy):
    """Each trial samples a whole architecture and recipe with the study's sampler (TPE, or random with
    ``--sampler random``) and is pruned by its pruner (median, or successive halving with ``--fidelities``);
    the search runs to ``--trials`` finished trials, on any number of workers."""

    def remaining(self, study: optuna.Study, settings: StudySettings) -> int:
        return settings.trials - finished_count(study)

    def start(self, opened: OpenedStudy, data: TrialData) -> Callable[[optuna.Trial], Any]:
        s = opened.settings
        done = finished_count(opened.study)
        self.target = TrialTarget(s.trials, max_attempts=3 * (s.trials - done) + 10)
        self.bar = TrialsBar(s.trials, done, s.objective, s.progress)
        return Objective(data, TrialSettings.of(s), opened.attrs.get("calibration"))

    def next_trial(self, study: optuna.Study) -> Next:
        return self.target(study)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.bar(study, trial)

    def close(self) -> None:
        self.bar.close()


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
