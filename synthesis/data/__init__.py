"""Stage 1, data: sources per input format, decoding, the image cache, splits, chirality, the procedural set, preprocessing and the one preparation step."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "dataset": ["GalaxyImages", "open_cached"],
    "decode": ["IMAGE_EXTENSIONS", "decode_image", "decode_rows"],
    "fits": ["FITS_EXTENSIONS", "FitsLayout", "decode_fits"],
    "preparation": ["PreparedData", "TensorSplit", "TrialData", "data_plan", "load_study_data"],
    "preprocessing": ["BandMapping", "ExtraScaler", "Normalizer", "PreprocessingConfig", "asinh", "cached_to_units"],
    "schema": ["QuestionSchema", "load_schema"],
    "settings": ["DataSettings"],
})
