"""batch-metrics: collect CI validation results, upload them as one batch, store them."""

__version__ = "0.1.0"
