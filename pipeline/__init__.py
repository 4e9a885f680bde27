"""cai pipeline: stages, model backends, the store, training and the CLI."""

__version__ = "0.1.0"
