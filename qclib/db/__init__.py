"""The QC database: SQLAlchemy models, alembic migrations, queries.

The only package that imports SQLAlchemy (import-linter checks it).
"""

from qclib.db.database import Database, Session, open_database

__all__ = ["Database", "Session", "open_database"]
