"""The endpoint side: HTTP -> rows -> roll-ups -> answers.

app.py builds the ASGI app from views/ (the Worker-compatible API, the dashboard), access/ checks
credentials (tokens, OIDC), edge.py and body.py guard every request, storage/ keeps batches in
SQLite or PostgreSQL, answers/ turns roll-ups into the dashboard's JSON and `/metrics`, serving.py
runs it all under Hypercorn. Nothing here imports the client: the two sides share only
`batch_metrics.models`.
"""
