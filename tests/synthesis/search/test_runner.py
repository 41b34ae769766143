"""One run path: every strategy's trials go through the runner's drive_trials and Optuna's Study.optimize."""

import time
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import TrialState

import synthesis.search.runner as runner
from synthesis.search.progressive import GrowthSettings, ProgressiveGrowth
from synthesis.search.runner import execution_for, run_study, strategy_for
from synthesis.search.strategy import Next, SampledSearch, Strategy, TrialTarget
from tests.helpers import heartbeat_study, tiny


class _ToTarget(Strategy):
    def __init__(self, target: int, max_attempts: int) -> None:
        super().__init__()
        self.target = TrialTarget(target, max_attempts)

    def next_trial(self, study: optuna.Study) -> Next:
        return self.target(study)


def test_a_dead_workers_trial_is_waited_for_then_its_retry_runs(tmp_path):
    study, storage = heartbeat_study(tmp_path)
    study.tell(study.ask(), 0.5)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(dead._trial_id)  # then silence: its worker "died"
    ran = []

    def objective(trial):
        ran.append(trial.number)
        return trial.suggest_float("x", 0, 1)

    t0 = time.time()
    runner.drive_trials(study, _ToTarget(2, max_attempts=5), objective, poll_seconds=0.2)
    trials = study.get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2  # exactly the target
    assert trials[dead.number].state == TrialState.FAIL
    retry = trials[ran[0]]
    assert retry.system_attrs.get("failed_trial") == dead.number and retry.params == dead.params
    assert len(ran) == 1 and time.time() - t0 >= 1.5  # it waited out the grace period instead of overshooting


def _run_spied(monkeypatch, settings, strategy=None):
    """run_study, recording for every trial created whether it was asked inside drive_trials' Study.optimize."""
    inside = {"drive": 0, "optimize": 0}
    asked: list[tuple[int, bool]] = []

    def counted(key, function):
        def call(*args, **kwargs):
            inside[key] += 1
            try:
                return function(*args, **kwargs)
            finally:
                inside[key] -= 1
        return call

    real_ask = optuna.Study.ask

    def ask(self, *args, **kwargs):
        trial = real_ask(self, *args, **kwargs)
        asked.append((trial.number, inside["drive"] > 0 and inside["optimize"] > 0))
        return trial

    monkeypatch.setattr(runner, "drive_trials", counted("drive", runner.drive_trials))
    monkeypatch.setattr(optuna.Study, "optimize", counted("optimize", optuna.Study.optimize))
    monkeypatch.setattr(optuna.Study, "ask", ask)
    run = run_study(settings, strategy)
    assert asked and all(through for _, through in asked), asked  # no trial made outside the runner's loop
    assert sorted(n for n, _ in asked) == [t.number for t in run.study.get_trials()]
    return run


@pytest.mark.parametrize("kind", ["tpe", "random", "promotion"])
def test_sampled_strategies_run_through_the_runner(tmp_path, monkeypatch, kind):
    from synthesis.search.trials import finished

    options = {"tpe": {}, "random": {"sampler": "random"}, "promotion": {"epochs": 1, "fidelities": "1,2", "trials": 3}}[kind]
    settings = tiny(tmp_path, **{"trials": 2, "workers": 1, **options})
    assert type(strategy_for(settings)) is SampledSearch
    run = _run_spied(monkeypatch, settings)
    assert sum(finished(t) for t in run.study.get_trials()) == settings.trials
    sampler = {"random": optuna.samplers.RandomSampler}.get(kind, optuna.samplers.TPESampler)
    assert isinstance(run.study.sampler, sampler)
    if kind == "promotion":
        assert isinstance(run.study.pruner, optuna.pruners.SuccessiveHalvingPruner)
        assert all("1" in t.user_attrs["rungs"] for t in run.study.get_trials() if finished(t))


def test_progressive_growth_is_a_strategy_with_no_loop_of_its_own(tmp_path, monkeypatch):
    settings = tiny(tmp_path, strategy="progressive", growth_widths="16,32", max_blocks=2)
    strategy = strategy_for(settings)
    assert isinstance(strategy, ProgressiveGrowth) and strategy.growth.widths == (16, 32)
    run = _run_spied(monkeypatch, settings)  # every child trial was asked by Study.optimize inside drive_trials
    children = run.study.get_trials()
    assert len(children) == 3 and all(t.state == TrialState.COMPLETE and "growth" in t.user_attrs for t in children)
    assert "max-blocks 2" in run.outcome.stop_reason and [s.trial for s in run.outcome.steps] == [0, 1, 2]


class _Rescoring(optuna.samplers.BaseSampler):
    """A sampler around the study's own, as a self-calibrating search would put one."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner, self.sampled = inner, 0

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.sampled += 1
        return self.inner.sample_independent(study, trial, param_name, param_distribution)


class _SelfCalibrating(SampledSearch):
    """The next strategy's two hooks: wrap the sampler, act after each trial; the runner is unchanged."""

    seen: list[int]

    def wrap_sampler(self, sampler):
        self.seen, self.wrapper = [], _Rescoring(sampler)
        return self.wrapper

    def after_trial(self, study, trial):
        super().after_trial(study, trial)
        self.seen.append(trial.number)


def test_a_strategy_can_wrap_the_sampler_and_act_after_each_trial(tmp_path):
    strategy = _SelfCalibrating()
    run = run_study(tiny(tmp_path, trials=2, workers=1, sampler="random"), strategy)
    assert run.study.sampler is strategy.wrapper and strategy.wrapper.sampled > 0
    assert strategy.seen == [t.number for t in run.study.get_trials()]


def test_the_runner_decides_the_plan_and_starts_the_workers(tmp_path, monkeypatch):
    import synthesis.search.workers as workers

    started = []
    monkeypatch.setattr(workers, "run_workers", lambda settings, plan: started.append(plan))
    monkeypatch.setattr(runner, "drive_trials", lambda *a, **k: pytest.fail("ran trials in the parent"))
    seen = []
    run_study(tiny(tmp_path, trials=4, workers=2), on_ready=lambda opened: seen.append(opened.execution))
    assert [p.workers for p in started] == [2] and seen == started


def test_one_process_for_a_sequence_of_work_or_objects_that_cannot_travel(tmp_path):
    from synthesis.hardware.cores import allotted_cores

    opened = SimpleNamespace(settings=tiny(tmp_path, workers=None), device=torch.device("cpu"), study=None)
    grown = execution_for(opened, ProgressiveGrowth(GrowthSettings()))
    assert (grown.workers, grown.threads) == (1, allotted_cores().cores) and "one sequence" in grown.reason
    given = execution_for(opened, SampledSearch(pruner=optuna.pruners.NopPruner()), stop_when=lambda: False)
    assert (given.workers, given.threads) == (1, 1) and given.reason.startswith("pruner, stop_when given as Python objects")
