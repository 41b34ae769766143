import pytest
from optuna.trial import TrialState

import synthesis.search.objective as objective_mod
from synthesis.search.runner import run_study
from synthesis.training.loop import TrainingDiverged
from tests.helpers import tiny


def test_a_collapsed_model_never_outranks_one_that_learned():
    from proxies.guard import guarded, is_collapsed
    from synthesis.search.objective import trial_value

    learned = {"val_acc": 0.62, "val_balanced_acc": 0.41, "val_predicted_classes": 4}
    majority = {"val_acc": 0.70, "val_balanced_acc": 0.25, "val_predicted_classes": 1}  # all ellipticals
    at_chance = {"val_acc": 0.66, "val_balanced_acc": 0.25, "val_predicted_classes": 3}
    assert not is_collapsed(learned, 4) and is_collapsed(majority, 4) and is_collapsed(at_chance, 4)
    for objective in ("val_acc", "balanced_acc"):
        assert trial_value(learned, objective, None, 4) > trial_value(majority, objective, None, 4)
        assert trial_value(learned, objective, None, 4) > trial_value(at_chance, objective, None, 4)
    assert guarded(0.9, True) < guarded(0.1, False) and guarded(0.9, True) > guarded(0.8, True)  # order kept among them


def test_diverging_trial_is_pruned_with_reason_and_study_goes_on(tmp_path, monkeypatch):
    real = objective_mod.train_model
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TrainingDiverged("train loss became nan at epoch 1, batch 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective_mod, "train_model", flaky)
    study = run_study(tiny(tmp_path, trials=2)).study
    diverged = [t for t in study.trials if "diverged" in t.user_attrs.get("prune_reason", "")]
    assert len(diverged) == 1 and diverged[0].state == TrialState.PRUNED
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2


def test_a_sample_over_the_caps_is_shrunk_to_fit_and_trains(tmp_path):
    study = run_study(tiny(tmp_path, trials=3, max_mflops=2.0, max_params=60_000)).study
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and not any("--max-" in t.user_attrs.get("prune_reason", "") for t in study.trials)
    shrunk = [t for t in done if "fitted_to_caps" in t.user_attrs]
    assert shrunk, "with caps this tight some samples must have been shrunk"
    for t in done:
        assert t.user_attrs["flops"] <= 2e6 and t.user_attrs["params"] <= 60_000
        assert t.user_attrs["cpu_images_per_second"] > 0
    moved = shrunk[0].user_attrs["fitted_to_caps"]
    assert moved["sampled_flops"] > 2e6 or moved["sampled_params"] > 60_000


def test_oversize_architectures_are_pruned_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(objective_mod, "train_model", lambda *a, **k: pytest.fail("trained an oversize model"))
    s = tiny(tmp_path, trials=1, max_params=10)
    study = run_study(s).study  # every candidate is over the cap: the run stops after its attempt budget
    assert study.trials and all(t.state == TrialState.PRUNED for t in study.trials)
    assert "--max-params" in study.trials[0].user_attrs["prune_reason"]  # even the smallest network is over
    assert "even after shrinking" in study.trials[0].user_attrs["prune_reason"]


def test_flops_cap_prunes_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(objective_mod, "train_model", lambda *a, **k: pytest.fail("trained an over-FLOPs model"))
    study = run_study(tiny(tmp_path, trials=1, max_mflops=0.001, max_params=10**9)).study
    assert study.trials and all(t.state == TrialState.PRUNED and "--max-mflops" in t.user_attrs["prune_reason"] for t in study.trials)


def test_with_equivariant_auto_on_spirals_of_both_senses_trials_sample_c4_but_never_d4(tmp_path, monkeypatch):
    import dataclasses

    real = objective_mod.space_for
    offered = []

    def equivariant_only(equivariant, mirror_pairs, allow_flips):
        space = real(equivariant, mirror_pairs, allow_flips)  # the rule, fed the study's data by the objective
        offered.append(space.blocks)
        return dataclasses.replace(space, blocks=tuple(b for b in space.blocks if b in ("c4", "d4")))

    monkeypatch.setattr(objective_mod, "space_for", equivariant_only)
    run = run_study(tiny(tmp_path, trials=2, equivariant="auto"))
    assert offered == [("plain", "residual", "inverted", "c4")]  # the embedded set has spiral_cw and spiral_acw
    study = run.study
    assert study.user_attrs["galaxy_synth"]["search_space"]["blocks"] == ["plain", "residual", "inverted", "c4"]
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(trained) == 2 and all(t.user_attrs["arch"]["block"] == "c4" for t in trained)
    assert all(t.user_attrs["flops"] > 0 and t.user_attrs["metrics"]["zc_snip"] > 0 for t in trained)


def test_a_time_cap_prunes_what_no_shrinking_brings_under_it(tmp_path, monkeypatch):
    monkeypatch.setattr(objective_mod, "train_model", lambda *a, **k: pytest.fail("trained a network over --max-ms"))
    study = run_study(tiny(tmp_path, trials=1, max_ms=1e-6)).study  # no network takes a nanosecond per image
    assert study.trials and all(t.state == TrialState.PRUNED for t in study.trials)
    assert "> --max-ms 1e-06 even after shrinking" in study.trials[0].user_attrs["prune_reason"]
    assert any((tmp_path / "results" / "cache").glob("latency-*.json"))  # the operators it timed are kept for the next run
