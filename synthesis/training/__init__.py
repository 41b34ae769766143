"""Stage 3, training: the one loop (trials, promotion, full training, export), its recipe (loss, optimiser, schedule), augmentation and metrics."""
