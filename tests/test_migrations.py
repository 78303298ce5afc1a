"""The Alembic history has one head, and upgrading an empty database gives exactly the
tables the code declares (no drift between migrations and schema modules)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from listbot.clock import FakeClock
from listbot.store import Store
from listbot.store.engine import MIGRATIONS
from listbot.store.schema import metadata


def test_one_head() -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1


async def test_upgraded_schema_matches_the_declared_tables(db_url: str,
                                                           clock: FakeClock) -> None:
    import listbot.app  # noqa: F401  every feature's schema module registers its tables

    store = Store.open(db_url, clock)
    await store.upgrade()

    def diff(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        return [d for d in compare_metadata(ctx, metadata)
                if not (isinstance(d, tuple) and d[0] in ("remove_index", "add_index"))]

    async with store.unit() as tx:
        differences = await tx.conn.run_sync(diff)
    await store.close()
    assert differences == []
