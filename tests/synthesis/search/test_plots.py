"""What a study draws: a penalty is not a score, and the front shows its knee."""

import optuna
import pandas as pd

from synthesis.search.plots import cpu_timeline, plot_front, plot_history


def _study_with_a_collapsed_trial():
    study = optuna.create_study(direction="maximize")
    for value, collapsed in ((0.6, False), (-9.4, True), (0.7, False)):
        t = study.ask()
        t.set_user_attr("collapsed", collapsed)
        t.set_user_attr("process_cpu_seconds", 10.0 * (t.number + 1))
        t.set_user_attr("worker", "host:1")
        study.tell(t, value)
    return study


def test_the_history_keeps_a_penalised_trial_off_the_axis(tmp_path, monkeypatch):
    import synthesis.search.plots as plots

    seen = {}
    real = plots.save_figure

    def spy(fig, path):
        seen["ylim"] = fig.axes[0].get_ylim()
        return real(fig, path)

    monkeypatch.setattr(plots, "save_figure", spy)
    assert plot_history(_study_with_a_collapsed_trial(), tmp_path / "h.png").stat().st_size > 1000
    assert seen["ylim"][0] > 0.5  # the axis is the learned trials' range, not stretched down to -9.4


def test_the_front_is_drawn_with_its_knee(tmp_path):
    table = pd.DataFrame({"trial": [0, 1, 2, 3], "finished": True, "collapsed": False,
                          "rank_score": [0.80, 0.84, 0.85, 0.70], "flops": [2e6, 8e6, 40e6, 1e6],
                          "ranked_by": "val_acc"})
    assert plot_front(table, tmp_path / "f.png", n_images=500).stat().st_size > 1000


def test_cpu_timeline_continues_across_resumed_processes():
    study = optuna.create_study(direction="maximize")
    for worker, cpu in (("a:1", 5.0), ("a:1", 9.0), ("b:2", 3.0)):  # the second process restarts its clock
        t = study.ask()
        t.set_user_attr("process_cpu_seconds", cpu)
        t.set_user_attr("worker", worker)
        study.tell(t, 0.5)
    assert [cpu for cpu, _ in cpu_timeline(study)] == [5.0, 9.0, 12.0]
