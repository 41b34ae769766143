"""Calibration: which trials get ground truth, the proxy fitted on their full trainings (:mod:`synthesis.full_training`), honest (cross-validated) reports and transfer to unseen studies."""
