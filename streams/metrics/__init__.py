"""The worker's ``/metrics``: the KPI series read from the queue state, and the worker's own."""
