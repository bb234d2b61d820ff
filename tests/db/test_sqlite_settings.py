"""SQLite connections: WAL (dashboards read while a pass writes), commits synced at
checkpoints, foreign keys enforced."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from qclib.db import open_database


def test_every_connection_gets_the_settings(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'qc.db'}")
    with database.engine.connect() as connection:
        pragma = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys")
        }
    assert pragma == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1}  # 1: NORMAL
