"""Full training reads its own settings: where a study keeps its trainings, its precision and device, the request's
budget and seeds."""

from pathlib import Path

from synthesis.full_training.settings import FullTrainingJob, FullTrainingSettings
from synthesis.settings import StudySettings
from tests.helpers import each_field_changed


def test_full_training_follows_the_study_address_precision_and_device_and_nothing_else():
    base = StudySettings(study="s", precision="fp32")
    follows = {name for name, changed in each_field_changed(base)
               if FullTrainingSettings.of(changed) != FullTrainingSettings.of(base)}
    assert follows == {"study", "storage", "results", "precision", "device", "progress"}
    s = FullTrainingSettings.of(StudySettings(study="s", results="r", storage="sqlite:///x.db", device="cpu"),
                                epochs=15, seed=2)
    assert (s.epochs, s.seeds, s.storage_url, s.device) == (15, (2,), "sqlite:///x.db", "cpu")
    assert s.weights_dir == Path("r") / "studies" / "s" / "ground_truth"


def test_jobs_go_seed_major_over_the_requested_seeds():
    s = FullTrainingSettings.of(StudySettings(study="s"), epochs=3, seed=5, seeds=2)
    assert s.seeds == (5, 6)
    assert s.jobs([4, 1]) == [FullTrainingJob(4, 5), FullTrainingJob(1, 5), FullTrainingJob(4, 6), FullTrainingJob(1, 6)]
