"""Generic helpers every package may use (no galaxy-synth imports): atomic files, tables, figures, rank statistics."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "errors": ["DataError", "GalaxySynthError", "StudyMismatchError"],
    "figures": ["pyplot", "save_figure"],
    "files": ["atomic_folder", "atomic_path", "atomic_write_text"],
    "statistics": [
        "bootstrap_ci",
        "bootstrap_interval",
        "kendall",
        "mean_spearman_ci",
        "nanmean",
        "paired_difference",
        "spearman",
        "spearman_columns",
        "top_k_recall",
        "within_fold_ranks",
    ],
    "tables": ["read_table", "write_table"],
})
