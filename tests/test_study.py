import optuna
import pytest
from optuna.trial import TrialState

import synthesis.search.objective as objective_mod
from galaxy_common.tables import write_table
from synthesis.errors import StudyMismatchError
from synthesis.search.plots import plot_history
from synthesis.search.ranking import metrics_table, summary_rows
from synthesis.search.runner import run_study
from synthesis.search.samplers import make_pruner
from synthesis.settings import STUDY_ATTR, StudySettings
from synthesis.training.loop import TrainingDiverged


def tiny(tmp_path, **kw):
    base = dict(size=32, synthetic_n=200, max_samples=80, val_subset=40, epochs=1, trials=3,
                results=str(tmp_path / "results"), max_params=150_000, progress=False, study="t",
                objective="val_acc")
    return StudySettings(**{**base, **kw})


def states(study):
    return [t.state for t in study.get_trials()]


def test_study_completes_records_and_resumes(tmp_path):
    s = tiny(tmp_path)
    study = run_study(s)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    t = complete[0]
    for key in ("arch", "spec_hash", "train_config", "params", "flops", "history", "val_acc", "val_balanced_acc", "wall_seconds"):
        assert key in t.user_attrs
    from proxies.guard import guarded

    # (the value comes from the stored history, rounded to 6 digits; val_acc is the epoch record itself)
    assert t.value == pytest.approx(guarded(t.user_attrs["val_acc"], t.user_attrs["collapsed"]), rel=1e-5)  # collapsed: shifted below
    attrs = study.user_attrs[STUDY_ATTR]
    assert len(attrs["plan"]["trial_train"]) == 80 and attrs["sampler"]["name"] == "TPESampler"

    again = run_study(s)  # target reached: nothing new
    assert len(again.trials) == len(study.trials)
    more = run_study(tiny(tmp_path, trials=4))
    assert sum(st == TrialState.COMPLETE for st in states(more)) == 4
    # earlier trials untouched
    assert [t.value for t in more.trials[:3]] == [t.value for t in study.trials[:3]]

    write_table(metrics_table(more), tmp_path / "trials.csv")
    plot_history(more, tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 1000
    assert len(summary_rows(more, top=2)) == 2


def test_resume_with_other_settings_is_refused(tmp_path):
    run_study(tiny(tmp_path, trials=1))
    with pytest.raises(StudyMismatchError, match="epochs: study has 1, now 2"):
        run_study(tiny(tmp_path, trials=1, epochs=2))
    with pytest.raises(StudyMismatchError, match="max_samples"):
        run_study(tiny(tmp_path, trials=1, max_samples=60))


def test_same_seed_same_parameters_and_metrics(tmp_path):
    a = run_study(tiny(tmp_path / "a", trials=2))
    b = run_study(tiny(tmp_path / "b", trials=2))
    c = run_study(tiny(tmp_path / "c", trials=2, seed=1))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_diverging_trial_is_pruned_with_reason_and_study_goes_on(tmp_path, monkeypatch):
    real = objective_mod.train_model
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TrainingDiverged("train loss became nan at epoch 1, batch 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective_mod, "train_model", flaky)
    study = run_study(tiny(tmp_path, trials=2))
    diverged = [t for t in study.trials if "diverged" in t.user_attrs.get("prune_reason", "")]
    assert len(diverged) == 1 and diverged[0].state == TrialState.PRUNED
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2


def test_a_sample_over_the_caps_is_shrunk_to_fit_and_trains(tmp_path):
    study = run_study(tiny(tmp_path, trials=3, max_mflops=2.0, max_params=60_000))
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
    study = run_study(s)  # every candidate is over the cap: the run stops after its attempt budget
    assert study.trials and all(t.state == TrialState.PRUNED for t in study.trials)
    assert "--max-params" in study.trials[0].user_attrs["prune_reason"]  # even the smallest network is over
    assert "even after shrinking" in study.trials[0].user_attrs["prune_reason"]


def test_flops_cap_prunes_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(objective_mod, "train_model", lambda *a, **k: pytest.fail("trained an over-FLOPs model"))
    study = run_study(tiny(tmp_path, trials=1, max_mflops=0.001, max_params=10**9))
    assert study.trials and all(t.state == TrialState.PRUNED and "--max-mflops" in t.user_attrs["prune_reason"] for t in study.trials)


def test_loss_choice_reaches_every_trial_and_is_frozen(tmp_path):
    study = run_study(tiny(tmp_path, trials=1, loss="focal", label_smoothing=0.0))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done[0].user_attrs["train_config"]["loss"] == "focal"
    with pytest.raises(StudyMismatchError, match="loss"):
        run_study(tiny(tmp_path, trials=1, loss="ce"))


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


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_promotion_gives_the_best_trials_the_larger_budgets_and_ranks_by_budget_reached(tmp_path, schedule):
    s = tiny(tmp_path, trials=10, epochs=1, fidelities="1,2,4", schedule=schedule, objective="val_acc")
    study = run_study(s)
    from synthesis.search.trials import finished

    done = [t for t in study.trials if finished(t)]
    assert len(done) == 10  # exactly the target: completed and stopped-at-a-budget trials count
    first = sorted(done, key=lambda t: t.number)[:2]  # η = 2 = the bootstrap: nobody to compete with yet
    assert all(t.state == TrialState.PRUNED and list(t.user_attrs["rungs"]) == ["1"] for t in first)
    stopped = [t for t in done if t.state == TrialState.PRUNED]
    full = [t for t in done if t.state == TrialState.COMPLETE]
    assert stopped and all(t.user_attrs["rung_stopped"] and "rung: stopped after" in t.user_attrs["prune_reason"]
                           for t in stopped)
    for t in full:  # reached every budget, scored at each; the first budget's metrics feed the proxy
        assert sorted(t.user_attrs["rungs"], key=int) == ["1", "2", "4"]
        assert len(t.user_attrs["history"]["epochs"]) == 1 and "tse" in t.user_attrs["metrics"]
        assert t.value == pytest.approx(t.user_attrs["rungs"]["4"]["score"])
    assert all("1" in t.user_attrs["rungs"] for t in done)
    table = metrics_table(study)
    ranked = table[table["finished"]]
    assert list(ranked["rung_reached"]) == sorted(ranked["rung_reached"], reverse=True)  # highest budget first
    assert ranked.iloc[0]["trial"] in {t.number for t in full}
    assert study.user_attrs[STUDY_ATTR]["pruner"] == "successive-halving 1,2,4 (eta 2, bootstrap 2)"


def test_bad_fidelities_are_one_line(tmp_path):
    from synthesis.errors import GalaxySynthError

    for bad, message in (("2,5", "same whole factor"), ("2", "at least two"), ("1,2,4", "must start at the trial budget")):
        with pytest.raises(GalaxySynthError, match=message):
            run_study(tiny(tmp_path, epochs=2, fidelities=bad))
    assert not (tmp_path / "results" / "study.db").exists()
