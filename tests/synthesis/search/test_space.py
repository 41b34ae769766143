import optuna
import pytest

from synthesis.models.spec import ArchSpec
from synthesis.search.space import SearchSpace


@pytest.mark.parametrize("size", [16, 32, 64])
def test_every_sample_is_a_valid_spec(size):
    space = SearchSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        spec, cfg = space.suggest(trial, num_classes=4, image_size=size, n_extra=2)
        assert ArchSpec.from_json(spec.to_json()) == spec
        assert 2 <= len(spec.stages) <= 4 and size >= 2 ** len(spec.stages)
        assert spec.n_extra == 2 and cfg.optimizer in space.optimizers
        study.tell(trial, 0.0)


def test_parameter_names_are_stable():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    SearchSpace().suggest(trial, 3, 64, 0)
    names = set(trial.params)
    n = trial.params["n_stages"]
    expected = {"n_stages", "block", "stem_width", "stem_kernel", "downsample", "dropout", "optimizer", "lr",
                "weight_decay", "batch_size"} | {f"depth_s{i}" for i in range(n)} | {f"width_s{i}" for i in range(n)}
    assert names == expected


def test_fixed_params_replay_the_same_architecture():
    # A retried (heartbeat-stale) trial is re-run from its stored params: it must rebuild the same spec.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    first = study.ask()
    spec, _ = SearchSpace().suggest(first, 3, 64, 0)
    study.tell(first, 0.5)
    study.enqueue_trial(first.params)
    again, _ = SearchSpace().suggest(study.ask(), 3, 64, 0)
    assert again == spec


def test_params_of_is_the_inverse_of_suggest():
    import optuna

    from synthesis.search.space import SearchSpace

    space = SearchSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for _ in range(5):
        spec, cfg = space.suggest(study.ask(), 4, 32, 2)
        again = optuna.create_study()
        again.enqueue_trial(space.params_of(spec, cfg))
        spec2, cfg2 = space.suggest(again.ask(), 4, 32, 2)
        assert spec2 == spec and cfg2 == cfg


def test_fit_to_caps_shrinks_the_widest_stage_first_and_stops_when_it_fits():
    from synthesis.models.spec import StageSpec
    from synthesis.search.space import fit_to_caps

    big = ArchSpec(num_classes=4, stages=(StageSpec(4, 128), StageSpec(4, 128), StageSpec(4, 96)), block="inverted",
                   image_size=32)
    fit = fit_to_caps(big, 5_000_000, 40e6)
    assert fit.sampled_flops > 40e6 >= fit.flops and fit.changed
    assert fit.steps[0] == "stage 0 width 128→96"  # the widest, earliest of equals
    assert fit.spec.block == big.block and [s.depth for s in fit.spec.stages] == [4, 4, 4]
    small = fit_to_caps(fit.spec, 5_000_000, 40e6)
    assert not small.changed and small.spec == fit.spec  # already under the caps: untouched
