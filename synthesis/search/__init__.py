"""Stage 4, search: the space, samplers and pruners, the study and its storage, one trial (objective), the runner, promotion, progressive growth, rankings and plots."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "calibrating": ["CalibratingSearch"],
    "growth_report": ["summarise"],
    "plots": ["plot_anytime", "plot_front", "plot_history"],
    "ranking": [
        "binomial_se",
        "cost_column",
        "cost_front",
        "is_trial_collapsed",
        "knee_of",
        "metrics_table",
        "objective_words",
        "score_images",
        "summary_rows",
        "trial_metrics",
    ],
    "runner": ["run_study", "strategy_for"],
    "scorer_versions": ["current_scorer_line", "stored_versions", "version_rows"],
    "storage": ["existing_storage_url", "journal_path", "load_existing_study", "masked"],
    "study": ["OpenedStudy", "find_calibration", "reopen_study", "shipped_calibration"],
    "trials": ["completed_trials", "finished_count"],
})
