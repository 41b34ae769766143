"""Stage 2, models: the architecture spec, blocks, the one builder, the reference architectures."""
