"""batch-metrics: collect CI validation results, upload them as one batch, store them."""

__version__ = "0.1.0"

# The Worker's name for the shared secret; the client and the endpoint both read it.
TOKEN_ENV = "BATCH_METRICS_TOKEN"  # noqa: S105 - a variable name, not a secret
# Where `batch-metrics upload` sends a saved payload when --endpoint is not given.
ENDPOINT_ENV = "BATCH_METRICS_ENDPOINT"
