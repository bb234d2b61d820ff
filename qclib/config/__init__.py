"""Validated configuration: instruments (TOML per instrument) and workspaces (qc.toml)."""
