import pytest
from galaxy_synth.cli import main

TINY = ["--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40", "--max-params", "150000",
        "--no-progress", "--epochs", "1"]


@pytest.mark.parametrize("cost, second", [("time", "predicted_ms_per_image_at_batch"), ("flops", "params")])
def test_multi_objective_gives_a_pareto_front(tmp_path, capsys, cost, second):
    results = tmp_path / "r"
    assert main(["synth", "--results", str(results), "--trials", "2", "--objective", "multi", "--cost", cost, *TINY]) == 0
    assert ("objective: composite proxy score and predicted time per image" in capsys.readouterr().out) == (cost == "time")
    import optuna

    study = optuna.load_study(study_name="galaxy-synth", storage=f"sqlite:///{results / 'study.db'}")
    assert len(study.directions) == 2 and study.best_trials
    assert all(t.values[1] == t.user_attrs[second] for t in study.trials if t.values)  # --cost: what is minimised
    timed = [("predicted_ms_per_image" in t.user_attrs) for t in study.trials if t.values]
    assert timed and all(x == (cost == "time") for x in timed)  # operators are timed only where the time is used
    from synthesis.search import metrics_table

    assert set(metrics_table(study)["cost_by"]) == {"predicted_ms_per_image_at_batch" if cost == "time" else "flops"}


def test_the_front_keeps_what_no_cheaper_trial_beats_and_the_knee_is_within_one_se():
    import pandas as pd

    from synthesis.search.ranking import binomial_se, cost_front, knee_of

    table = pd.DataFrame({"trial": [0, 1, 2, 3, 4], "finished": [True] * 4 + [False], "collapsed": [False] * 5,
                          "rank_score": [0.80, 0.84, 0.85, 0.70, 0.99], "flops": [2e6, 8e6, 40e6, 1e6, 1e6]})
    front = cost_front(table)
    assert list(front["trial"]) == [3, 0, 1, 2]  # cheapest first; the unfinished trial is not on it
    se = binomial_se(0.85, 500)
    assert 0.015 < se < 0.017
    assert int(knee_of(front, 500)["trial"]) == 1  # 0.84 is within one SE of 0.85 at a fifth of the FLOPs
    assert int(knee_of(front, 10**9)["trial"]) == 2  # with a tiny SE only the best is within it


def _front_table(**extra):
    import pandas as pd

    return pd.DataFrame({"trial": [0, 1, 2, 3, 4], "finished": [True] * 4 + [False], "collapsed": [False] * 5,
                         "rank_score": [0.80, 0.84, 0.85, 0.70, 0.99], "flops": [2e6, 8e6, 40e6, 1e6, 1e6],
                         # depthwise trial 3 is the cheapest in FLOPs and the slowest in time
                         "predicted_ms_per_image_at_batch": [0.5, 1.0, 3.0, 4.0, 0.1], **extra})


def test_cost_flops_gives_todays_front_and_knee():
    from synthesis.search.ranking import cost_front, knee_of

    today, flops = _front_table(), _front_table(cost_by=["flops"] * 5)
    assert list(cost_front(flops)["trial"]) == list(cost_front(today)["trial"]) == [3, 0, 1, 2]
    assert int(knee_of(cost_front(flops), 500)["trial"]) == int(knee_of(cost_front(today), 500)["trial"]) == 1


def test_cost_time_ranks_the_front_by_predicted_time():
    from synthesis.search.ranking import cost_front, knee_of

    table = _front_table(cost_by=["predicted_ms_per_image_at_batch"] * 5)
    front = cost_front(table)
    assert list(front["trial"]) == [0, 1, 2]  # trial 3 is slower than trial 0 and scores less: off the front
    assert int(knee_of(front, 500)["trial"]) == 1


def test_a_study_made_before_cost_is_ranked_by_flops():
    from synthesis.search.ranking import study_cost

    assert study_cost({}) == study_cost({"settings": {"seed": 0}}) == "flops"
    assert study_cost({"settings": {"cost": "time"}}) == "time"


def test_a_fraction_error_study_ranks_the_smallest_error_first():
    import optuna
    from optuna.distributions import FloatDistribution

    from synthesis.search import metrics_table
    from synthesis.settings import STUDY_ATTR

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(STUDY_ATTR, {"objective": "val_fraction_mae", "class_names": ["a", "b"]})
    for mae, acc in ((0.30, 0.9), (0.10, 0.5), (0.20, 0.7)):
        study.add_trial(optuna.trial.create_trial(
            value=-mae, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
            user_attrs={"collapsed": False, "arch": {"block": "plain"},
                        "metrics": {"val_fraction_mae": mae, "val_acc": acc, "val_predicted_classes": 2}}))
    table = metrics_table(study)
    assert list(table["val_fraction_mae"]) == [0.10, 0.20, 0.30] and set(table["ranked_by"]) == {"val_fraction_mae"}
    assert list(table["rank_score"]) == [-0.10, -0.20, -0.30]  # not by validation accuracy
