"""galaxy-synth command line (wires synthesis, proxies and correlation)."""

__version__ = "0.1.0"
