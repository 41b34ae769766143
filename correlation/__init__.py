"""Ground truth by full training, proxy calibration and honest (cross-validated) reports."""
