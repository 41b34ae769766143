"""Scorer versions in the study's storage: workers refitting at once never overwrite each other's version, the
pointer only moves forward, and a study of the first calibrating release (pointer = a number) still opens."""

import optuna

from synthesis.search import scorer_versions
from synthesis.search.scorer_versions import CURRENT_KEY, ScorerVersion, current_version, store_version, stored_versions
from synthesis.search.self_calibration import RungChoice


def _study() -> optuna.Study:
    return optuna.create_study(storage="sqlite:///:memory:")


def _version(number: int, fitted_on: list[int], chosen: str = "sturdy") -> ScorerVersion:
    return ScorerVersion(number, {"2": RungChoice(chosen=chosen, why="test")}, fitted_on, f"t{number}-{len(fitted_on)}")


def test_a_worker_that_finds_a_version_as_new_keeps_it_instead_of_its_own():
    study = _study()
    first = _version(1, [1, 2])
    assert store_version(study, first) is first
    late = _version(1, [1, 2, 3], chosen="prior")  # fitted from the same version 0, a moment later
    kept = store_version(study, late)
    assert kept.key == first.key and kept.choice(2).chosen == "sturdy"
    assert current_version(study).fitted_on == [1, 2] and len(stored_versions(study)) == 1
    store_version(study, _version(2, [1, 2, 3]))
    store_version(study, _version(1, [1, 2, 3, 4]))  # stale: the pointer does not go back
    assert current_version(study).number == 2


def test_two_workers_storing_at_the_same_moment_write_two_keys_and_the_pointer_names_one_whole(monkeypatch):
    study = _study()
    monkeypatch.setattr(scorer_versions, "current_version", lambda s: ScorerVersion())  # both read version 0
    a, b = _version(1, [1, 2]), _version(1, [1, 3], chosen="prior")
    store_version(study, a)
    store_version(study, b)
    monkeypatch.undo()
    assert a.key != b.key and {v["key"] for v in stored_versions(study)} == {a.key, b.key}
    current = current_version(study)  # the last writer's, complete: never a's evidence with b's choice
    assert (current.fitted_on, current.choice(2).chosen) == ([1, 3], "prior")
    assert study.user_attrs[a.key]["rungs"]["2"]["chosen"] == "sturdy"  # what scored a's trials is still there


def test_a_study_whose_pointer_is_a_number_still_opens():
    study = _study()
    old = _version(3, [4, 5]).to_dict()
    study.set_user_attr("scorer:v3", old)
    study.set_user_attr(CURRENT_KEY, 3)
    assert current_version(study).fitted_on == [4, 5] and current_version(study).number == 3
    assert [v["version"] for v in stored_versions(study)] == [3]
