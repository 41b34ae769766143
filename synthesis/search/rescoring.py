"""The sampler and the promotion pruner see every trial as the current scorer version scores it.

Optuna's TPE reads the study's trials through ``study._get_trials`` (its values, and for pruned
trials the last intermediate value), and the successive-halving pruner reads each trial's score
at a rung from its ``completed_rung_<k>`` system attr: both frozen when the trial reported. Here
both get a :class:`RescoredStudy` instead: the same study, whose trials come back with those
numbers replaced by the current version's scores of the signals each trial recorded at each rung
(:mod:`synthesis.search.scorer_versions`). Nothing in the storage changes; a trial with no
recorded signals comes back as it is.
"""

from __future__ import annotations

import copy
from typing import Any, Container, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from synthesis.search.scorer_versions import SIGNALS_ATTR, PriorScore, ScorerVersion, current_version, rung_metrics

RUNG_KEY = "completed_rung_{}"  # where Optuna's SuccessiveHalvingPruner keeps a trial's score at rung k


class Rescorer:
    """Scores trials by the study's current scorer version (cached per finished trial and version).

    Unconfigured (before the strategy starts) it hands every trial back unchanged.
    """

    def __init__(self) -> None:
        self.version = ScorerVersion()
        self.rungs: list[int] = []
        self.prior: PriorScore | None = None
        self.num_classes = 2
        self._cache: dict[int, FrozenTrial] = {}

    def configure(self, rungs: list[int], prior: PriorScore, num_classes: int) -> None:
        self.rungs, self.prior, self.num_classes = list(rungs), prior, num_classes

    def refresh(self, study: optuna.Study) -> ScorerVersion:
        """Read the current version from the study's storage (another worker may have refitted)."""
        version = current_version(study)
        if (version.number, version.fitted_on) != (self.version.number, self.version.fitted_on):
            self.version = version
            self._cache.clear()
        return self.version

    def rung_score(self, trial: FrozenTrial, budget: int) -> float | None:
        """A trial's score at ``budget`` under the current version (None where it recorded no signals there)."""
        metrics = rung_metrics(trial, budget)
        if metrics is None or self.prior is None:
            return None
        return self.version.score(self.rungs.index(budget), budget, metrics, self.prior, self.num_classes)

    def __call__(self, trial: FrozenTrial) -> FrozenTrial:
        if self.prior is None or not trial.user_attrs.get(SIGNALS_ATTR):
            return trial
        done = trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        if done and trial.number in self._cache:
            return self._cache[trial.number]
        scores = {b: s for b in self.rungs if (s := self.rung_score(trial, b)) is not None}
        out = copy.copy(trial)
        out.intermediate_values = {step: scores.get(step, value) for step, value in trial.intermediate_values.items()}
        out.system_attrs = {**trial.system_attrs, **{RUNG_KEY.format(k): scores[b] for k, b in enumerate(self.rungs)
                                                     if RUNG_KEY.format(k) in trial.system_attrs and b in scores}}
        if done:
            self._cache[trial.number] = out
        return out


class RescoredStudy:
    """A view of a study whose trials come back rescored; everything else is the study itself."""

    def __init__(self, study: optuna.Study, rescore: Rescorer) -> None:
        self._study = study
        self._rescore = rescore

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        return [self._rescore(t) for t in self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return [self._rescore(t) for t in self._study.get_trials(deepcopy=deepcopy, states=states)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class RescoringSampler(optuna.samplers.BaseSampler):
    """Any sampler (TPE) shown the study's trials as the current scorer version scores them."""

    def __init__(self, inner: optuna.samplers.BaseSampler, rescorer: Rescorer) -> None:
        self.inner = inner
        self.rescorer = rescorer

    def _view(self, study: optuna.Study) -> RescoredStudy:
        return RescoredStudy(study, self.rescorer)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:
        return self.inner.sample_independent(self._view(study), trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.rescorer.refresh(study)  # once per trial: the version a refit elsewhere made current
        self.inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class RescoringPruner(optuna.pruners.BasePruner):
    """Promotion (successive halving) comparing a trial with the others' scores under the current version.

    The reporting trial's own score already is the current version's (the objective scored it so).
    """

    def __init__(self, inner: optuna.pruners.BasePruner, rescorer: Rescorer) -> None:
        self.inner = inner
        self.rescorer = rescorer

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        self.rescorer.refresh(study)
        return self.inner.prune(RescoredStudy(study, self.rescorer), trial)
