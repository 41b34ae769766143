"""A search that calibrates its scorer on its own promoted trials (``--strategy calibrating``, issue #36).

Trials are sampled by TPE as in :class:`synthesis.search.strategy.SampledSearch`, with promotion
(``--fidelities``, by default ``E,3E,9E`` for ``--epochs E``). Every rung a trial reaches, it
records its signals there (``rung_signals``). Whenever a promoted trial finishes, the study refits
its scorer on that evidence (:func:`synthesis.search.scorer_versions.refit`: per rung below the
last, the prior, ``train_loss`` or an in-study composite, whichever ranks the promoted trials
measurably better) and freezes the result as a new version in its storage, with a line on the
console. From then on:

* each rung's score is the current version's score of that rung's own signals
  (:class:`CalibratingObjective`), not the prior's (the frozen calibration at the first rung,
  validation accuracy above it);
* TPE and the promotion pruner see every trial rescored by the current version
  (:mod:`synthesis.search.rescoring`), not the value frozen when it reported;
* each trial records the version that scored it (``scorer_version``, and per rung in ``rung_signals``).

The last rung is scored as today: there is nothing above it to learn from.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from galaxy_common import atomic_write_text
from proxies import CompositeProxy, early_training_metrics
from synthesis import StudySettings
from synthesis.data import TrialData
from synthesis.search.objective import Objective, record_training
from synthesis.search.promotion import RungReporter
from synthesis.search.rescoring import Rescorer, RescoringPruner, RescoringSampler
from synthesis.search.scorer_versions import (
    SIGNALS_ATTR,
    ScorerVersion,
    current_version,
    prior_scorer,
    refit,
    store_version,
    stored_versions,
)
from synthesis.search.settings import TrialSettings
from synthesis.search.strategy import SampledSearch
from synthesis.search.study import OpenedStudy
from synthesis.training import EpochRecord, TrainHistory

log = logging.getLogger("galaxy_synth")


class CalibratingObjective(Objective):
    """A trial whose every rung is scored by the study's current scorer version, recording its signals there."""

    def __init__(self, trial_data: TrialData, settings: TrialSettings, calibration: dict[str, Any] | None,
                 rescorer: Rescorer) -> None:
        super().__init__(trial_data, settings, calibration)
        self.rescorer = rescorer

    def _rung_score(self, trial: optuna.Trial, epochs: list[EpochRecord], reporter: RungReporter, params: int,
                    flops: int, zc: dict[str, float]) -> float:
        history = TrainHistory(list(epochs))
        budget = len(epochs)
        rung = reporter.rungs.index(budget)
        if rung == 0:  # as every study: the trial's metrics, proxy score and collapse flag, recorded
            metrics = record_training(trial, history, params, flops, zc, time.perf_counter() - reporter.start,
                                      self.proxy, self.data.num_classes)
        else:
            metrics = {**early_training_metrics(history.to_dict(), params, flops), **zc}
        version = self.rescorer.refresh(trial.study)
        score = version.score(rung, budget, metrics, self.rescorer.prior, self.data.num_classes)
        signals = dict(trial.user_attrs.get(SIGNALS_ATTR) or {})
        signals[str(budget)] = {"metrics": metrics, "scorer_version": version.number, "scorer_key": version.key}
        trial.set_user_attr(SIGNALS_ATTR, signals)
        trial.set_user_attr("scorer_version", version.number)
        trial.set_user_attr("scorer_key", version.key)
        return score


class CalibratingSearch(SampledSearch):
    """TPE with promotion whose scorer is refitted, inside the study, on the study's own promoted trials."""

    setting = "calibrating"

    def __init__(self, sampler: optuna.samplers.BaseSampler | None = None,
                 pruner: optuna.pruners.BasePruner | None = None) -> None:
        super().__init__(sampler, pruner)
        self.rescorer = Rescorer()
        self.versions: list[ScorerVersion] = []  # the versions this process made (or found current at its start)
        self.outcome = self.versions

    def wrap_sampler(self, sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
        return RescoringSampler(sampler, self.rescorer)

    def start(self, opened: OpenedStudy, data: TrialData) -> Callable[[optuna.Trial], Any]:
        super().start(opened, data)
        s = opened.settings
        if not s.rungs:
            raise ValueError("--strategy calibrating needs promotion (--fidelities); its settings resolve one by default")
        calibration = opened.attrs.get("calibration")
        frozen = CompositeProxy.from_dict(calibration) if calibration else None
        self.rungs = list(s.rungs)
        self.num_classes = data.num_classes
        self.seed = s.sampler_seed
        self.rescorer.configure(self.rungs, prior_scorer(s.objective, frozen, data.num_classes), data.num_classes)
        opened.study.pruner = RescoringPruner(opened.study.pruner, self.rescorer)
        current = self.rescorer.refresh(opened.study)
        if current.number:  # a resumed study: say which version it goes on with
            self.versions.append(current)
            self.say(current.describe())
        return CalibratingObjective(data, TrialSettings.of(s), calibration, self.rescorer)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().after_trial(study, trial)
        self.refit(study)
        bar = self.bar.bar
        bar.set_postfix_str(f"{bar.postfix} | scorer v{self.rescorer.version.number}", refresh=False)

    def refit(self, study: optuna.Study) -> ScorerVersion | None:
        """A new scorer version when promoted trials finished since the current one; None when nothing changed."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        new = refit(trials, self.rungs, current_version(study), self.rescorer.prior, self.num_classes, self.seed)
        if new is None:
            return None
        if store_version(study, new) is not new:
            self.rescorer.refresh(study)  # another worker stored a version as new: go on with that one
            return None
        self.rescorer.refresh(study)
        self.versions.append(new)
        self.say(new.describe())
        return new

    def write_outputs(self, study: optuna.Study, settings: StudySettings) -> list[Path]:
        """The study's tables and plots, and ``scorer_versions.json``: every version it froze, per rung what was chosen and why."""
        written = super().write_outputs(study, settings)
        versions = stored_versions(study)
        if versions:
            written.append(atomic_write_text(settings.study_dir / "scorer_versions.json", json.dumps(versions, indent=2)))
        return written

    def say(self, line: str) -> None:
        """A line on the console above the progress bar (in the log when the bar is off)."""
        if getattr(self, "bar", None) is not None and not self.bar.bar.disable:
            self.bar.bar.write(line)
        else:
            log.info(line)

