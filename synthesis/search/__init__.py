"""Stage 4, search: the space, samplers and pruners, the study and its storage, one trial (objective), the runner, promotion, progressive growth, rankings and plots."""
