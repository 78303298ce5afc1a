"""Shared fixtures: real SQLite files, the real PostgreSQL server, a recording SMTP sink."""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from listbot.core.clock import FakeClock
from listbot.core.store import Store
from listbot.settings import Settings, build
from tests.mta_dovecot import Dovecot
from tests.sink import Sink

pytest_plugins = ["tests.pgp_fixtures"]

PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL on 127.0.0.1:5432 unreachable: {exc}"


PG_UNAVAILABLE = _pg_available()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the `test` database, dropped afterwards (xdist-safe)."""
    if PG_UNAVAILABLE:
        pytest.skip(PG_UNAVAILABLE)
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield (f"postgresql+psycopg://postgres@127.0.0.1:5432/test"
               f"?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'listbot.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


ROOT = Path(__file__).resolve().parent.parent

BASE_CONFIG: dict[str, Any] = {
    "rules": {"dir": str(ROOT / "rules")},
    "instance": {"name": "test", "hostname": "lists.example.org", "log_format": "json"},
    "listen": {"lmtp": "127.0.0.1:0", "smtp": "127.0.0.1:0", "max_message_bytes": 65536},
    "worker": {"poll_interval_seconds": 0.2, "lease_seconds": 60},
    "delivery": {"transport": "smtp", "backoff_initial_seconds": 60.0,
                 "smtp": {"host": "127.0.0.1", "port": 1, "starttls": "none"}},
    "project": {"name": "Example"},
    "team": {"address": "security@example.org", "name": "Example security team",
             "members": [{"name": "Alice", "address": "alice@example.org"},
                         {"name": "Bob", "address": "bob@example.org"}]},
    "lists": {
        "security": {"kind": "security", "address": "security@example.org"},
        "discuss": {"kind": "discuss", "address": "discuss@lists.example.org",
                    "display_name": "Example discuss",
                    "list_id": "discuss.lists.example.org",
                    "moderators": ["alice@example.org"],
                    # Alice and Bob have no keys here; tests of signed decisions give
                    # them keys and turn it on (tests/moderation_helpers.py).
                    "require_signed_decisions": False},
        "applications": {"kind": "applications",
                         "address": "applications@lists.example.org",
                         "require_signed_decisions": False},
    },
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_config(tmp_path: Path, db_url: str) -> Callable[..., Settings]:
    """Settings as `load` makes them from a file of BASE_CONFIG merged with `extra`."""

    def factory(extra: dict[str, Any] | None = None, sink: Sink | None = None) -> Settings:
        data = merge(BASE_CONFIG, {"instance": {"state_dir": str(tmp_path / "state")},
                                   "database": {"url": db_url}})
        if sink is not None:
            data = merge(data, {"delivery": {"smtp": {"port": sink.port}}})
        return build(merge(data, extra or {}), tmp_path)
    return factory


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> Any:
    """Await until predicate() holds; event-driven callers pass an asyncio.Event instead."""

    async def waiter() -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)

    return waiter()


@pytest.fixture
async def store(db_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """A migrated store on each database; test modules with other needs override it."""
    s = Store.open(db_url, clock)
    await s.upgrade()
    yield s
    await s.close()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A real Dovecot on loopback with one mailbox (tests mark themselves needs_dovecot)."""
    dv = Dovecot.create()
    dv.start()
    try:
        yield dv
    finally:
        dv.stop()
        dv.remove()
