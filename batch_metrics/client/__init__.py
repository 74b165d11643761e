"""The client side: result files -> rows -> one batch payload -> `POST /batch-metrics`, and the Actions glue.

collect/ reads the files (one module per format), payload.py builds the batch, disk.py keeps it,
upload.py sends it, actions.py and summary.py talk to GitHub Actions, redact.py keeps secrets out
of all of it; job.py and resend.py are the `run` and `upload` commands. Nothing here imports the
endpoint: the two sides share only `batch_metrics.models`.
"""
