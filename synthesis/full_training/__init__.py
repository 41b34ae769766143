"""Full training, after the search: a trial's architecture trained with the full budget and scored on the test split.

One rule for every command (``correlate``, ``export``, the benchmarks): a full training is *stored or
trained now* (:mod:`.rule`), under the stage's settings (:mod:`.settings`: study, budget, seeds,
precision, device); several run at once in a pool of single-threaded processes
(:mod:`.pool`); each result lives in the ground-truth store beside the study (:mod:`.store`) and
travels as self-contained CSV rows (:mod:`.tables`). Calibration (``correlation``) and export
(``galaxy_synth.export``) both build on it.

The names below load their module on first use, so importing the store or the tables alone needs no torch.
"""

import lazy_loader

_HOMES = {
    "rule": ("stored_or_trained", "full_train", "FullTrainingResult", "check_full_epochs", "full_training_config",
             "architecture_key", "load_weights", "fill_arch_keys"),
    "pool": ("train_jobs", "full_training_plan", "train_all"),
    "settings": ("FullTrainingSettings", "FullTrainingJob"),
    "store": ("open_ground_truth", "GroundTruthStore", "GroundTruthRecord", "SqlGroundTruthStore",
              "JournalGroundTruthStore", "TARGETS"),
    "tables": ("ground_truth_rows", "merge_ground_truth_csv", "read_ground_truth_tables", "mean_rows_over_seeds",
               "CSV_KEY", "TRIAL_SETTINGS"),
}
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_HOMES)
