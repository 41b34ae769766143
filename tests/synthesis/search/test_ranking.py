from galaxy_synth.cli import main

TINY = ["--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40", "--max-params", "150000",
        "--no-progress", "--epochs", "1"]


def test_multi_objective_gives_a_pareto_front(tmp_path, capsys):
    results = tmp_path / "r"
    assert main(["synth", "--results", str(results), "--trials", "2", "--objective", "multi", *TINY]) == 0
    import optuna

    study = optuna.load_study(study_name="galaxy-synth", storage=f"sqlite:///{results / 'study.db'}")
    assert len(study.directions) == 2 and study.best_trials
    assert all(t.values[1] == t.user_attrs["params"] for t in study.trials if t.values)


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
