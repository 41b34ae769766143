import optuna
import pytest

from synthesis.search.samplers import make_pruner


def test_pruner_choice():
    assert isinstance(make_pruner("auto", 2)[0], optuna.pruners.NopPruner)
    assert isinstance(make_pruner("auto", 6)[0], optuna.pruners.MedianPruner)


def test_random_sampler_is_the_baseline_option_and_unknown_names_fail():
    import optuna as _optuna

    from synthesis.errors import GalaxySynthError
    from synthesis.search.samplers import make_sampler

    sampler, info = make_sampler(3, 0, name="random")
    assert isinstance(sampler, _optuna.samplers.RandomSampler) and info == {"name": "RandomSampler", "seed": 3}
    a, _ = make_sampler(3, 0, worker_id=0)
    b, _ = make_sampler(3, 0, worker_id=1)
    study_a, study_b = (_optuna.create_study(sampler=s) for s in (a, b))
    xa = [study_a.ask().suggest_float("x", 0, 1) for _ in range(3)]
    xb = [study_b.ask().suggest_float("x", 0, 1) for _ in range(3)]
    assert xa != xb  # parallel workers do not replay each other's start-up samples
    with pytest.raises(GalaxySynthError, match="unknown sampler"):
        make_sampler(0, 0, name="cmaes")
