"""The endpoint's answers to a reader: the dashboard's queries (dashboard.py), their shapes, `/metrics`."""
