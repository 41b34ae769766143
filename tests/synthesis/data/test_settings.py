"""The data stage reads its own settings, derived once from the study's: the data fields and nothing else."""

from pathlib import Path

from synthesis.data.settings import DataSettings
from synthesis.settings import StudySettings
from tests.helpers import each_field_changed

DATA_FIELDS = {"data", "size", "crop", "merge", "drop", "extra_columns", "bands", "hdu", "band_mapping", "soft_labels",
               "schema", "keep_columns", "max_samples", "val_subset", "synthetic_n", "seed", "results", "progress"}


def test_data_settings_follow_the_data_fields_and_nothing_else():
    base = StudySettings(size=32)
    follows = {name for name, changed in each_field_changed(base) if DataSettings.of(changed) != DataSettings.of(base)}
    assert follows == DATA_FIELDS  # e.g. --epochs, --sampler, --search-seed or --storage leave the data alone


def test_data_settings_parse_what_the_loaders_take():
    s = DataSettings.of(StudySettings(results="r", soft_labels="p_el, p_cw,,p_acw", keep_columns=["ra", "dec"],
                                      merge=["a,b=c"], extra_columns=[]))
    assert s.soft_labels == ("p_el", "p_cw", "p_acw") and s.keep_columns == ("ra", "dec") and s.merge == ("a,b=c",)
    assert s.cache_dir == Path("r") / "cache"
    assert s.extra_columns == () and DataSettings.of(StudySettings()).extra_columns is None  # none vs the defaults
