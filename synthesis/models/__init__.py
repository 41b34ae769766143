"""Stage 2, models: the architecture spec, blocks, the one builder, the reference architectures."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "equivariant": ["plain_convolutions"],
    "builder": ["build_model", "count_flops", "count_params", "cpu_images_per_second", "spec_cost"],
    "latency": ["CATALOGUE_BATCH", "LatencyTable", "measured_ms_per_image", "operators"],
    "ensemble": ["ENSEMBLE_FORMAT", "EnsembleModel", "WithMemberProbabilities", "load_ensemble", "save_ensemble"],
    "package": ["PackagedModel", "fused_for_inference", "load_model", "save_model"],
    "vote_head": ["VoteHead", "dirichlet_means", "dirichlet_multinomial_nll", "fraction_errors", "vote_head_of",
                  "vote_loss"],
    "spec": [
        "ArchSpec",
        "OutputLayout",
        "BLOCK_TYPES",
        "DOWNSAMPLE_MODES",
        "EQUIVARIANT_BLOCKS",
        "OPTIMIZERS",
        "StageSpec",
        "SymmetryGroup",
        "TrainConfig",
        "group_of",
        "model_spec_from_dict",
    ],
})
