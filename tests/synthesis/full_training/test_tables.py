import pandas as pd

from synthesis.full_training.store import open_ground_truth
from tests.helpers import calibrate_tiny


def test_every_full_training_is_written_as_rows_that_outlive_the_results_folder(tiny_study, tmp_path):
    from synthesis.full_training.tables import mean_rows_over_seeds, read_ground_truth_tables

    root, url = tiny_study
    keep = tmp_path / "kept" / "gt.csv"
    report, written = calibrate_tiny(root, url, save_ground_truth=keep)
    rows = pd.read_csv(keep)
    assert {"dataset", "arch_json", "train_config_json", "trial_schedule", "trial_precision", "gt_seed", "full_epochs",
            "accuracy", "balanced_accuracy", "tse", "zc_synflow"} <= set(rows.columns)
    assert len(rows) == len(open_ground_truth(url).table("gt")) and (root / "studies" / "gt" / "ground_truth_rows.csv").is_file()
    again = read_ground_truth_tables([keep])
    assert len(mean_rows_over_seeds(again, 1)) == rows["trial"].nunique()
    calibrate_tiny(root, url, save_ground_truth=keep)  # merging the same rows again replaces, never duplicates
    assert len(pd.read_csv(keep)) == len(rows)
