import numpy as np
import pytest
from optuna.trial import TrialState

from galaxy_common.tables import write_table
from synthesis.errors import StudyMismatchError
from synthesis.search.plots import plot_history
from synthesis.search.ranking import metrics_table, summary_rows
from synthesis.search.runner import run_study
from synthesis.settings import STUDY_ATTR
from tests.helpers import tiny


def states(study):
    return [t.state for t in study.get_trials()]


def test_study_completes_records_and_resumes(tmp_path):
    s = tiny(tmp_path)
    study = run_study(s).study
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    t = complete[0]
    for key in ("arch", "spec_hash", "train_config", "params", "flops", "history", "val_acc", "val_balanced_acc", "wall_seconds"):
        assert key in t.user_attrs
    assert "predicted_ms_per_image" not in t.user_attrs  # --cost flops (the default) times no operator
    from proxies.guard import guarded

    # (the value comes from the stored history, rounded to 6 digits; val_acc is the epoch record itself)
    assert t.value == pytest.approx(guarded(t.user_attrs["val_acc"], t.user_attrs["collapsed"]), rel=1e-5)  # collapsed: shifted below
    attrs = study.user_attrs[STUDY_ATTR]
    assert len(attrs["plan"]["trial_train"]) == 80 and attrs["sampler"]["name"] == "TPESampler"

    again = run_study(s).study  # target reached: nothing new
    assert len(again.trials) == len(study.trials)
    more = run_study(tiny(tmp_path, trials=4)).study
    assert sum(st == TrialState.COMPLETE for st in states(more)) == 4
    # earlier trials untouched
    assert [t.value for t in more.trials[:3]] == [t.value for t in study.trials[:3]]

    write_table(metrics_table(more), tmp_path / "trials.csv")
    plot_history(more, tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 1000
    rows = summary_rows(more, top=2)
    assert len(rows) == 2 and all(r["mflops"] > 0 and "ms_per_image" not in r for r in rows)  # --cost flops: no time


def test_resume_with_other_settings_is_refused(tmp_path):
    run_study(tiny(tmp_path, trials=1))
    with pytest.raises(StudyMismatchError, match="epochs: study has 1, now 2"):
        run_study(tiny(tmp_path, trials=1, epochs=2))
    with pytest.raises(StudyMismatchError, match="max_samples"):
        run_study(tiny(tmp_path, trials=1, max_samples=60))


def test_same_seed_same_parameters_and_metrics(tmp_path):
    a = run_study(tiny(tmp_path / "a", trials=2)).study
    b = run_study(tiny(tmp_path / "b", trials=2)).study
    c = run_study(tiny(tmp_path / "c", trials=2, seed=1)).study
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]








def test_loss_choice_reaches_every_trial_and_is_frozen(tmp_path):
    study = run_study(tiny(tmp_path, trials=1, loss="focal", label_smoothing=0.0)).study
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done[0].user_attrs["train_config"]["loss"] == "focal"
    with pytest.raises(StudyMismatchError, match="loss"):
        run_study(tiny(tmp_path, trials=1, loss="ce"))






@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_promotion_gives_the_best_trials_the_larger_budgets_and_ranks_by_budget_reached(tmp_path, schedule):
    s = tiny(tmp_path, trials=10, epochs=1, fidelities="1,2,4", schedule=schedule, objective="val_acc")
    study = run_study(s).study
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


def test_reopening_a_study_reads_the_cache_not_the_source(tmp_path, csv_folder):
    import shutil

    from synthesis.search.study import reopen_study

    s = tiny(tmp_path, data=str(csv_folder), trials=1, merge=["spiral_cw,spiral_acw=spiral"])
    run_study(s)
    shutil.rmtree(csv_folder)  # nothing of the source is left to list, hash or decode
    opened = reopen_study(s.storage_url, "t", tmp_path / "results", progress=False)
    assert opened.data.cache_file and len(opened.data) == opened.attrs["n_images"]
    assert opened.data.class_names == tuple(opened.attrs["class_names"])
    assert isinstance(opened.data.images, np.memmap) or getattr(opened.data.images, "base", None) is not None


def test_a_worker_that_finds_the_study_created_meanwhile_adopts_what_auto_resolved_there(tmp_path, monkeypatch):
    # Two workers start together on a new study; the other one creates it (fp32, by its own measurement) while this
    # one measures bf16 and loads data. Under --precision auto this worker joins with the study's precision.
    import synthesis.search.study as study_module

    run_study(tiny(tmp_path, trials=1, precision="fp32"))
    real_peek = study_module.peek_attrs
    peeks = []

    def first_blind(storage_url, study_name):
        peeks.append(1)
        return None if len(peeks) == 1 else real_peek(storage_url, study_name)

    monkeypatch.setattr(study_module, "peek_attrs", first_blind)
    monkeypatch.setattr(study_module, "resolve_precision",
                        lambda requested, device, cache_dir=None: study_module.PrecisionChoice(
                            "bf16" if requested == "auto" else requested, "test"))
    opened = study_module.prepare_study(tiny(tmp_path, trials=2, precision="auto"))
    assert opened.settings.precision == "fp32" and len(peeks) == 2
    with pytest.raises(StudyMismatchError, match="precision"):  # asked for explicitly, it is still refused
        peeks.clear()
        study_module.prepare_study(tiny(tmp_path, trials=2, precision="bf16"))
