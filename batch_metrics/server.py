"""The entry point the README and deploy/ name for any ASGI server, kept at its old place:

    hypercorn --workers 4 --bind 0.0.0.0:8787 'batch_metrics.server:app_from_env()'

The endpoint itself lives in `batch_metrics.endpoint` (app.py builds the app).
"""

from batch_metrics.endpoint.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
