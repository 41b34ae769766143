"""Generic helpers every package may use (no galaxy-synth imports): atomic files, tables, figures, rank statistics."""
