"""The Alembic history has one head, and upgrading an empty database gives exactly the
tables the code declares (no drift between migrations and schema modules)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from listbot.core.clock import FakeClock
from listbot.core.store import Store
from listbot.core.store.engine import HEAD_REVISION, MIGRATIONS, _alembic_config
from listbot.core.store.schema import metadata

PARENTS = ("0002_cases", "0003_moderation", "0004_advisories", "0005_imap",
           "0006_applications")


def test_one_head_and_the_code_knows_it() -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Start-up skips Alembic when the database is at HEAD_REVISION: a new migration
    # must move it, or it would never be applied to existing databases.
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD_REVISION]


async def test_a_database_behind_head_is_upgraded_at_start(db_url: str,
                                                           clock: FakeClock) -> None:
    store = Store.open(db_url, clock)
    await store.upgrade()
    async with store.unit() as tx:  # as an older listbot left it: the branches not joined
        await tx.conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0007_join"))
        await tx.conn.exec_driver_sql("DELETE FROM alembic_version")
        for parent in PARENTS:
            await tx.conn.exec_driver_sql(
                f"INSERT INTO alembic_version (version_num) VALUES ('{parent}')")
    assert await store.pending_migrations() == [HEAD_REVISION]
    await store.upgrade()
    assert await store.pending_migrations() == []
    async with store.unit() as tx:
        rows = (await tx.conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
    await store.close()
    assert [r[0] for r in rows] == [HEAD_REVISION]


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


async def test_parties_of_a_database_before_party_keys_keep_their_rows(
        db_url: str, clock: FakeClock) -> None:
    store = Store.open(db_url, clock)
    await store.upgrade()
    async with store.unit() as tx:  # back to the schema of 0007, with one party on it
        await tx.conn.run_sync(lambda c: command.downgrade(_alembic_config(c), "0007_join"))
        await tx.conn.exec_driver_sql(
            "INSERT INTO case_parties (case_id, address, name, added_at, added_by) "
            "VALUES ('SEC-2026-0001', 'psirt@vendor.example', 'PSIRT', "
            "'2026-11-25 09:00:00', 'cli:alice')")
    assert await store.pending_migrations() == ["0008_party_keys"]
    await store.upgrade()
    async with store.unit() as tx:
        rows = (await tx.conn.exec_driver_sql(
            "SELECT address, fingerprint FROM case_parties")).all()
    await store.close()
    assert [tuple(r) for r in rows] == [("psirt@vendor.example", None)]
