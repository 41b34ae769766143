"""The search and each trial read their own settings, derived once from the study's."""

from synthesis.search.settings import SearchSettings, TrialSettings
from synthesis.settings import StudySettings
from tests.helpers import each_field_changed

SEARCH_FIELDS = {"strategy", "sampler", "pruner", "objective", "epochs", "fidelities", "trials", "seed", "search_seed",
                 "worker_id", "poll_seconds", "progress"}
TRIAL_FIELDS = {"trials", "epochs", "fidelities", "loss", "label_smoothing", "schedule", "warmup", "precision",
                "max_params", "max_mflops", "objective", "seed", "progress", "equivariant",
                "cost", "max_ms", "results"}  # results: the folder of the cache of operator times (synthesis.models.LatencyTable)


def _follows(stage, base):
    return {name for name, changed in each_field_changed(base) if stage.of(changed) != stage.of(base)}


def test_each_stage_follows_its_own_fields_and_nothing_else():
    base = StudySettings(size=32, trials=20, max_mflops=40.0, objective="val_acc")
    assert _follows(SearchSettings, base) == SEARCH_FIELDS  # not the data, the loss or the storage
    assert _follows(TrialSettings, base) == TRIAL_FIELDS  # not the data, the sampler or the storage


def test_the_search_seed_is_the_samplers_and_the_trials_keep_the_split_seed():
    s = StudySettings(seed=3, search_seed=9, fidelities="2,6,18")
    assert SearchSettings.of(s).seed == 9 and TrialSettings.of(s).seed == 3
    assert SearchSettings.of(s).rungs == TrialSettings.of(s).rungs == (2, 6, 18)
    assert TrialSettings.of(StudySettings(max_mflops=40.0)).max_flops == 40e6
    assert TrialSettings.of(StudySettings(max_mflops=0.0)).max_flops is None  # 0 = no cap
