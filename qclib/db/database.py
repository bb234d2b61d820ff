"""Opening the QC database (SQLite by default, PostgreSQL by URL) and migrating it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from qclib.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
#: Rows per ``IN (...)`` query (SQLite allows 32,766 parameters; stay well below).
IN_CHUNK = 900


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets dashboards read while a run writes; the timeout rides out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed process
    # loses nothing and a power cut at most the last transactions (never consistency;
    # a pass redoes them). FULL cost 0.26 ms per commit idle and about 2.5 ms while the
    # workers write products (ext4 flushes their dirty data with the journal); a demo
    # history makes 3,300 commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """A migrated QC database: ``with db.transaction() as session: ...``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception."""
        with self._sessions.begin() as session:
            yield session

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def close(self) -> None:
        self.engine.dispose()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest alembic revision (idempotent)."""
    # Imported here: alembic costs 0.2-0.5 s at import, and recipe workers import this
    # module without ever migrating.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(url: str) -> Database:
    """Connect to ``url``, migrate it to the newest schema and return it.

    Raises
    ------
    ConfigError
        The database cannot be reached; the message names the URL.
    """
    kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except ArgumentError as err:
        raise ConfigError(f"database URL {url!r} is not usable: {err}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate(engine)
    except OperationalError as err:
        engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"cannot open the database {shown}: {err.orig}; check QC_DB_URL or qc.toml [database]"
        ) from None
    return Database(engine)
