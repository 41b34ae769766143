import pytest

import synthesis.full_training.rule as rule_mod
from synthesis.full_training.store import open_ground_truth
from tests.helpers import calibrate_tiny


def test_several_seeds_train_each_architecture_per_seed_and_fit_on_the_mean(tiny_study, monkeypatch):
    root, url = tiny_study
    calibrate_tiny(root, url)  # seed 0 for all six (reused if an earlier test made them)
    real = rule_mod.full_train
    trained = []
    monkeypatch.setattr(rule_mod, "full_train", lambda *a, **k: trained.append(a[1]) or real(*a, **k))  # (settings, job, ...)
    report, _ = calibrate_tiny(root, url, seeds=2)
    assert len(trained) == 6 and {job.seed for job in trained} == {1}  # only the new seed was trained
    assert report["ground_truth_seeds"] == [0, 1] and report["n_rows"] == 6
    gt = open_ground_truth(url).table("gt", 1)
    for row in report["ground_truth"]:
        both = gt[gt["trial_number"] == row["trial"]]
        assert sorted(both["seed"]) == [0, 1]
        assert row["accuracy"] == pytest.approx(both["accuracy"].mean())
        assert row["full_train_seconds"] == pytest.approx(both["wall_seconds"].sum())


@pytest.mark.parametrize("kw, message", [({"ground_truth": 5}, "--ground-truth 5"), ({"seeds": 0}, "--seeds must be >= 1"),
                                         ({"full_epochs": 0}, "--full-epochs must be >= 1")])
def test_requests_no_report_can_come_from_fail_before_any_training(tiny_study, monkeypatch, kw, message):
    from synthesis.errors import GalaxySynthError

    root, url = tiny_study
    monkeypatch.setattr(rule_mod, "full_train", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(GalaxySynthError, match=message):
        calibrate_tiny(root, url, **kw)
