"""The I/O side of the flow: ingest and quarantine (later: scheduler, executors)."""
