"""Engines for SQLite and PostgreSQL, and migrations through Alembic."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from listbot.core.errors import ConfigError, DatabaseRefused, TemporaryError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest migration. When the database is already there, start-up checks this one
# row and never imports Alembic, which would cost the daemon ~10 MB for its lifetime;
# tests/core/test_migrations.py keeps it equal to Alembic's own head.
HEAD_REVISION = "0008_party_keys"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def make_read_engine(url: str, writer: AsyncEngine) -> AsyncEngine:
    """SQLite readers use plain deferred transactions: in WAL mode they never wait for
    the writer's lock. On PostgreSQL the one engine serves both."""
    if not is_sqlite(url):
        return writer
    engine = create_async_engine(url, pool_size=4, max_overflow=4, hide_parameters=True,
                                 connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


# What a PostgreSQL server says when it refuses a connection for good: retrying with
# the same URL can only get the same answer.
_REFUSALS = ("password authentication failed", "authentication failed", "does not exist",
             "no pg_hba.conf entry", "invalid connection option", "invalid dsn",
             "is not permitted to log in", "permission denied for database")


def connection_failure(exc: BaseException) -> TemporaryError:
    """A database error as people can act on it: the driver's own words when the
    connection failed (they carry host, port, role and database, never a statement's
    values), refusals that a restart cannot cure as DatabaseRefused (exit 78)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if not text.startswith(("connection failed", "failed to resolve", "connection to server")):
        # A failed statement: its text may name tables and values; the type says enough.
        return TemporaryError(f"database unavailable: {type(exc).__name__}")
    text = text.removeprefix("connection failed: ")
    if any(refusal in text for refusal in _REFUSALS):
        return DatabaseRefused(f"database.url: the database refused the connection: {text}")
    return TemporaryError(f"database unavailable: {text}")


def make_engine(url: str) -> AsyncEngine:
    """ConfigError when the URL cannot be read (the message never repeats it: it may
    hold a password)."""
    try:
        return _make_engine(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(["database.url: not a valid database URL "
                           f"({type(exc).__name__}): check its host, port and name"]) from None


def _make_engine(url: str) -> AsyncEngine:
    # hide_parameters: a database error's text carries its bound values (message bytes,
    # addresses) into logs and quarantine notes unless told not to.
    if not is_sqlite(url):
        return create_async_engine(url, pool_size=8, max_overflow=4, pool_pre_ping=True,
                                   hide_parameters=True)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # A few pooled connections: opening one costs a thread and the PRAGMAs below, and
    # writers are serialised by BEGIN IMMEDIATE anyway.
    engine = create_async_engine(url, pool_size=4, max_overflow=4, hide_parameters=True,
                                 connect_args={"timeout": 30})
    _sqlite_pragmas(engine)
    return engine


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE below is the
        # only BEGIN: a deferred transaction that later writes can fail with "locked".
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config as AlembicConfig  # lazily: see HEAD_REVISION

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def at_head_sync(conn: Connection) -> bool:
    """The database carries exactly HEAD_REVISION (checked without Alembic)."""
    if not inspect(conn).has_table("alembic_version"):
        return False
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return [r[0] for r in rows] == [HEAD_REVISION]


def upgrade_sync(conn: Connection) -> None:
    if at_head_sync(conn):
        return
    from alembic import command

    command.upgrade(_alembic_config(conn), "heads")


def pending_migrations_sync(conn: Connection) -> list[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(conn))
    current = set(MigrationContext.configure(conn).get_current_heads())
    heads = set(script.get_heads())
    return sorted(heads - current)


class SingleInstanceLock:
    """SQLite is single-instance: a second daemon on the same file is refused."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".daemon.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TemporaryError(
                f"another listbot daemon already uses {self.path.with_suffix('')}; "
                "SQLite supports one daemon (use PostgreSQL for several)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
