"""Full training reads its own settings: where a study keeps its trainings, its precision, the request's budget."""

from pathlib import Path

from synthesis.settings import StudySettings
from synthesis.training.settings import FullTrainingSettings
from tests.helpers import each_field_changed


def test_full_training_follows_the_study_address_and_precision_and_nothing_else():
    base = StudySettings(study="s", precision="fp32")
    follows = {name for name, changed in each_field_changed(base)
               if FullTrainingSettings.of(changed) != FullTrainingSettings.of(base)}
    assert follows == {"study", "storage", "results", "precision", "progress"}
    s = FullTrainingSettings.of(StudySettings(study="s", results="r", storage="sqlite:///x.db"), epochs=15, seed=2)
    assert (s.epochs, s.seed, s.storage_url) == (15, 2, "sqlite:///x.db")
    assert s.weights_dir == Path("r") / "studies" / "s" / "ground_truth"
