from pathlib import Path

from synthesis.models.builder import build_model

ROOT = Path(__file__).resolve().parents[3]






def test_spec_cost_counts_what_torch_counts_on_samples_of_the_space():
    import optuna

    from synthesis.models.builder import count_flops, count_params, spec_cost
    from synthesis.search.space import SearchSpace

    space = SearchSpace()
    for i in range(40):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        spec, _ = space.suggest(study.ask(), 4, 32 if i % 2 else 64, i % 3)
        model = build_model(spec)
        assert spec_cost(spec) == (count_params(model), count_flops(model, spec)), spec.describe()


def test_spec_cost_counts_what_torch_counts_for_equivariant_networks():
    import optuna

    from synthesis.models.builder import count_flops, count_params, spec_cost
    from synthesis.search.space import space_for

    space = space_for("auto", [], True)  # c4 and d4 beside the ordinary blocks
    seen = set()
    for i in range(40):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        study.enqueue_trial({"block": ("c4", "d4")[i % 2]})
        spec, _ = space.suggest(study.ask(), 4, 32 if i % 4 < 2 else 64, i % 3)
        model = build_model(spec)
        assert spec_cost(spec) == (count_params(model), count_flops(model, spec)), spec.describe()
        seen.add((spec.block, spec.downsample))
    assert seen == {(b, d) for b in ("c4", "d4") for d in ("maxpool", "stride")}

