"""Export and predict read their own settings, each derived once."""

from pathlib import Path

from galaxy_synth.cli import _build_parser
from galaxy_synth.stage_settings import ExportSettings, PredictSettings
from synthesis.settings import StudySettings
from tests.helpers import each_field_changed


def test_export_follows_the_study_address_precision_and_data_names_and_nothing_else():
    base = StudySettings(study="s", precision="fp32")
    follows = {name for name, changed in each_field_changed(base) if ExportSettings.of(changed) != ExportSettings.of(base)}
    assert follows == {"study", "storage", "results", "precision", "progress", "data", "merge", "drop"}
    e = ExportSettings.of(StudySettings(study="s", results="r"), top=2, full_epochs=5, by="val_acc")
    assert e.models_dir == Path("r") / "studies" / "s" / "models" and e.full_training.epochs == 5 and e.top == 2
    assert e.dataset == "embedded procedural galaxies"


def test_predict_settings_come_from_the_command_line():
    args = _build_parser().parse_args(["predict", "--model", "m", "a.png", "b/", "--keep-columns", "ra, dec",
                                       "--chunk-size", "64", "--tta", "--no-progress"])
    p = PredictSettings.of(args)
    assert p.model == Path("m") and p.images == ("a.png", "b/") and p.keep_columns == ("ra", "dec")
    assert (p.chunk_size, p.tta, p.progress, p.precision, p.engine, p.out) == (64, True, False, "auto", "auto",
                                                                               Path("predictions.csv"))
