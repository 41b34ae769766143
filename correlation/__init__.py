"""Calibration: which trials get ground truth, the proxy fitted on their full trainings (:mod:`synthesis.full_training`), honest (cross-validated) reports and transfer to unseen studies."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "calibrate": ["calibrate_study", "calibrate_table", "calibrate_tables"],
})
