"""Data, search space, models, training loop and the Optuna study."""
