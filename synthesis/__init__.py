"""Data, search space, models, training loop and the Optuna study."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "choices": ["BandMapping", "Block", "Cost", "Equivariance", "Objective", "Precision", "RankBy", "Schedule", "names", "objective_info"],
    "command_line": ["add_arguments", "from_args", "to_argv"],
    "errors": ["DataError", "GalaxySynthError", "StudyMismatchError"],
    "limits": ["crop_problem", "image_size_problem"],
    "settings": [
        "PRUNERS",
        "SAMPLERS",
        "STORAGE_ENV",
        "STUDY_ATTR",
        "StudySettings",
        "check_ranges",
    ],
    "locations": ["DEFAULT_STUDY", "dataset_name", "default_storage_url", "default_study_name", "study_dir"],
})
