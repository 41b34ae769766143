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


def test_fit_to_caps_shrinks_a_network_predicted_too_slow():
    from synthesis.models import LatencyTable
    from synthesis.models.spec import StageSpec
    from synthesis.search.objective import over_cap
    from synthesis.search.settings import TrialSettings
    from synthesis.search.space import fit_to_caps
    from synthesis.settings import StudySettings

    table = LatencyTable(None, timer=lambda op, batch, device: 1e-4 * batch * (2 if op.key.startswith("inverted") else 1))
    big = ArchSpec(num_classes=4, stages=(StageSpec(2, 64), StageSpec(2, 64)), block="inverted", image_size=32)
    before = table.predict(big, 256)  # 8 operators of 0.1 ms, 4 of them inverted blocks at 0.2 ms: 1.2 ms
    at_cap = fit_to_caps(big, None, None, max_ms=before, predict_ms=lambda spec: table.predict(spec, 256))
    assert at_cap.ms == before and not at_cap.changed
    fit = fit_to_caps(big, None, None, max_ms=1.1, predict_ms=lambda spec: table.predict(spec, 256))
    assert fit.ms == pytest.approx(1.0) and fit.fits(None, None, 1.1) and fit.steps[-1] == "stage 0 depth 2→1"
    assert not fit.fits(None, None, 0.9) and fit.fits(None, None, None)
    never = fit_to_caps(big, None, None, max_ms=0.01, predict_ms=lambda spec: table.predict(spec, 256))
    assert not never.fits(None, None, 0.01)
    assert over_cap(never, TrialSettings.of(StudySettings(max_ms=0.01))).startswith("predicted 0.8 ms per image > --max-ms")


def _sampled_blocks(space, n=120):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    return {space.suggest(study.ask(), 4, 32, 0)[0].block for _ in range(n)}


def test_equivariant_off_is_the_default_space_and_rotations_adds_c4():
    from synthesis.search.space import space_for

    assert space_for("off", [], True) == SearchSpace()
    assert space_for("rotations", [], True).blocks == ("plain", "residual", "inverted", "c4")
    assert _sampled_blocks(space_for("rotations", [], True)) == {"plain", "residual", "inverted", "c4"}


@pytest.mark.parametrize("pairs, flips", [([(1, 2)], True), ([], False)], ids=["mirror pairs", "unpaired chiral class"])
def test_with_mirror_image_classes_the_space_never_samples_a_mirror_blind_network(pairs, flips):
    from synthesis.errors import GalaxySynthError
    from synthesis.models.spec import StageSpec
    from synthesis.search.space import refuse_mirror_blind, space_for

    assert _sampled_blocks(space_for("auto", [], True)) == {"plain", "residual", "inverted", "c4", "d4"}
    chiral = space_for("auto", pairs, flips)
    assert "d4" not in chiral.blocks and _sampled_blocks(chiral) == {"plain", "residual", "inverted", "c4"}
    d4 = ArchSpec(num_classes=4, stages=(StageSpec(1, 16),), block="d4", stem_width=8)
    with pytest.raises(GalaxySynthError, match="blind to mirror flips.*spiral_cw/spiral_acw"):
        refuse_mirror_blind(d4, [(1, 2)], True, ("elliptical", "spiral_cw", "spiral_acw", "edge_on"))
    with pytest.raises(GalaxySynthError, match="use c4"):
        refuse_mirror_blind(d4, pairs, flips)
    refuse_mirror_blind(d4, [], True)  # no mirror-image classes: allowed
    refuse_mirror_blind(ArchSpec(num_classes=4, stages=(StageSpec(1, 16),), block="c4", stem_width=8), pairs, flips)
