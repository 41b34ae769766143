"""Stage 3, training: the one loop (trials, promotion, full training, export), its recipe (loss, optimiser, schedule), augmentation and metrics."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "loop": ["EpochRecord", "TrainHistory", "TrainingDiverged", "evaluate", "train_model"],
    "temperature": ["TemperatureCalibration", "calibrate_network", "fit_temperature", "plot_reliability", "reliability",
                    "split_view_logits", "view_probabilities"],
    "uncertainty": ["Selection", "entropy_threshold", "greedy_selection", "log_loss", "mutual_information",
                    "plot_risk_coverage", "predictive_entropy", "risk_coverage"],
    "views": ["array_view", "dihedral_views", "mirror_permutation", "view_logits", "view_of"],
})
