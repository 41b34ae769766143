"""Pure scoring: a trial's raw metrics in, a proxy score out (imports neither synthesis nor correlation)."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "composite": ["CompositeProxy", "MissingMetricError"],
    "domain": ["differences", "domain_of"],
    "guard": ["COLLAPSE_SHIFT", "guarded", "is_collapsed"],
    "metrics": ["METRIC_NAMES", "early_training_metrics"],
    "seed": ["seed_calibration"],
    "zero_cost": ["ZERO_COST_NAMES", "zero_cost_scores"],
})
