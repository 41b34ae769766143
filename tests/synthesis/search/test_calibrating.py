"""--strategy calibrating end to end on a tiny study: promotion, rung signals, scorer versions, resume."""

import json

import optuna
import pytest

from synthesis.search.calibrating import CalibratingSearch
from synthesis.search.rescoring import RescoringPruner, RescoringSampler
from synthesis.search.runner import run_study, strategy_for
from synthesis.search.scorer_versions import (
    CURRENT_KEY,
    SIGNALS_ATTR,
    current_scorer_line,
    highest_budget,
    stored_versions,
    version_rows,
)
from synthesis.search.trials import finished
from synthesis import GalaxySynthError
from synthesis.settings import StudySettings, check_ranges
from tests.helpers import tiny


def test_promotion_is_on_by_default_and_a_resumed_study_keeps_its_own():
    assert StudySettings(strategy="calibrating", epochs=2).resolve("cpu").fidelities == "2,6,18"
    assert StudySettings(strategy="calibrating", epochs=2).resolve("cpu", {"fidelities": "2,4,8"}).fidelities == "2,4,8"
    assert StudySettings(strategy="calibrating", epochs=2, fidelities="2,4").resolve("cpu").fidelities == "2,4"
    assert StudySettings(epochs=2).resolve("cpu").fidelities is None  # the other strategies: unchanged
    with pytest.raises(GalaxySynthError, match="--strategy calibrating learns from promotion"):
        check_ranges(StudySettings(strategy="calibrating", objective="multi"))


def test_a_tiny_calibrating_study_records_signals_and_versions_and_resumes(tmp_path):
    settings = tiny(tmp_path, strategy="calibrating", fidelities="1,2", trials=5, workers=1)
    strategy = strategy_for(settings)
    assert isinstance(strategy, CalibratingSearch)
    run = run_study(settings, strategy, write_outputs=True)
    study = run.study
    assert isinstance(study.sampler, RescoringSampler) and isinstance(study.pruner, RescoringPruner)
    assert isinstance(study.pruner.inner, optuna.pruners.SuccessiveHalvingPruner)
    done = [t for t in study.get_trials() if finished(t)]
    assert len(done) == 5
    for t in done:  # every rung it reached: its signals, and the version that scored it
        assert set(t.user_attrs[SIGNALS_ATTR]) == set(t.user_attrs["rungs"])
        assert t.user_attrs["scorer_version"] == max(s["scorer_version"] for s in t.user_attrs[SIGNALS_ATTR].values())
    promoted = sorted(t.number for t in done if highest_budget(t) == 2)
    versions = stored_versions(study)
    if promoted:  # a refit after each promoted trial that finished, the last fitted on all of them
        assert study.user_attrs[CURRENT_KEY] == versions[-1]["key"] and versions[-1]["version"] == len(versions)
        assert versions[-1]["fitted_on"] == promoted and versions[-1]["rungs"]["1"]["chosen"] == "prior"
        assert "thin evidence" in versions[-1]["rungs"]["1"]["why"]
        assert [v.number for v in run.outcome] == [v["version"] for v in versions]
        assert current_scorer_line(study).startswith(f"scorer v{len(versions)} ({len(promoted)} promoted trials)")
        assert [r["version"] for r in version_rows(study)] == [v["version"] for v in versions]
        written = settings.study_dir / "scorer_versions.json"
        assert written in run.written and json.loads(written.read_text()) == versions
    else:
        assert versions == [] and current_scorer_line(study) is None
    resumed = run_study(settings.replace(trials=6), CalibratingSearch())
    assert len([t for t in resumed.study.get_trials() if finished(t)]) == 6
    if promoted:  # the resumed run went on with the study's version
        assert resumed.outcome[0].number == versions[-1]["version"]


def test_trials_are_scored_by_the_version_current_in_the_storage(tmp_path):
    """A version another worker stored (rung 1 scored by train_loss) is what the next trials report and are promoted by."""
    from proxies import guarded, is_collapsed
    from synthesis import STUDY_ATTR
    from synthesis.search.scorer_versions import ScorerVersion, evidence_trials, store_version
    from synthesis.search.self_calibration import RungChoice

    settings = tiny(tmp_path, strategy="calibrating", fidelities="1,2", trials=2, workers=1)
    study = run_study(settings).study
    evidence = sorted(t.number for t in evidence_trials(study.get_trials(), 1))
    store_version(study, ScorerVersion(7, {"1": RungChoice(chosen="sturdy", why="test")}, evidence))
    resumed = run_study(settings.replace(trials=4), CalibratingSearch()).study
    scored = [t for t in resumed.get_trials() if t.user_attrs.get("scorer_version") == 7]
    classes = len(resumed.user_attrs[STUDY_ATTR]["class_names"])
    assert scored, "no trial was scored by the stored version"
    for t in scored:
        metrics = t.user_attrs[SIGNALS_ATTR]["1"]["metrics"]
        assert t.intermediate_values[1] == guarded(-metrics["train_loss"], is_collapsed(metrics, classes))
