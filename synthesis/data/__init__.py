"""Stage 1, data: sources per input format, decoding, the image cache, splits, chirality, the procedural set, preprocessing and the one preparation step."""
