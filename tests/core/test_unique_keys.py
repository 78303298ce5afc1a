"""Every insert under a unique key loses a race the one way (core/store/upsert.py):
ON CONFLICT DO NOTHING, then False or the exception the store function names. Never
an IntegrityError, which on PostgreSQL would also abort the caller's transaction: each
test goes on using the transaction after the lost insert. On SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Table, UniqueConstraint, text

from listbot.core.calendar.timeline import Timeline
from listbot.core.clock import FakeClock
from listbot.core.errors import Refused, TemporaryError
from listbot.core.store import Store, Tx
from listbot.core.store import advisories as adv_ops
from listbot.core.store import applications as app_ops
from listbot.core.store import cases as case_store
from listbot.core.store import decisions as decision_ops
from listbot.core.store import moderation as held_ops
from listbot.core.store.schema import metadata

STORE = Path(adv_ops.__file__).resolve().parent
# Plain INSERTs into a table with a unique key that cannot conflict, and why.
PLAIN_INSERT_OK = {("outbox.py", "outbox"): "only rows without a dedupe_key: NULLs never "
                   "collide on (dedupe_key, recipient)"}

Insert = Callable[[Tx], Awaitable[object]]


def has_unique_key(table: Table) -> bool:
    return (table.autoincrement_column is None
            or any(isinstance(c, UniqueConstraint) for c in table.constraints)
            or any(i.unique for i in table.indexes) or any(c.unique for c in table.columns))


def plain_inserts() -> list[tuple[str, str]]:
    """(module, table) of every `insert(table)` in the store: SQLAlchemy's own, which
    raises on a conflict, not upsert's."""
    found = []
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "insert" and isinstance(node.args[0], ast.Name):
                found.append((path.name, node.args[0].id))
    return found


def test_no_store_module_inserts_plainly_under_a_unique_key() -> None:
    import listbot.core.store.cases  # noqa: F401  every schema module in the metadata

    tables = {t.name: t for t in metadata.sorted_tables}
    by_variable = {"parties_table": "case_parties"}  # an import alias in cases.py
    seen = plain_inserts()
    assert ("audit.py", "audit") in seen  # the scan finds them
    unsafe = [(module, name) for module, name in seen
              if has_unique_key(tables[by_variable.get(name, name)])
              and (module, name) not in PLAIN_INSERT_OK]
    assert unsafe == []


async def lost_twice(store: Store, insert: Insert, expected: type[Exception]) -> None:
    """The second insert raises `expected` and leaves its transaction usable."""
    async with store.unit() as tx:
        await insert(tx)
    async with store.unit() as tx:
        with pytest.raises(expected):
            await insert(tx)
        assert await tx.notices_since(["n@x"], tx.now) == 0  # the transaction still answers


def timeline(tx: Tx) -> Timeline:
    return Timeline(arrival=tx.now, predisclosure_at=tx.now, public_at=tx.now,
                    public_basis="default", steps=())


async def test_a_case_number_taken_meanwhile_is_retried(store: Store) -> None:
    async def open_case(tx: Tx) -> object:
        return await case_store.open_case(tx, case_id="SEC-2026-0001", reporter="r@x",
                                          subject="s", timeline=timeline(tx),
                                          reporter_fingerprint=None)
    await lost_twice(store, open_case, TemporaryError)


@pytest.mark.postgres
async def test_the_loser_of_a_real_race_waits_for_the_winner_then_retries(
        pg_url: str, clock: FakeClock) -> None:
    # Two daemons number the same case: the second insert waits for the first's
    # commit, then does nothing, and its handler learns TemporaryError (the message is
    # handled again), not an IntegrityError that would quarantine it.
    store = Store.open(pg_url, clock)
    await store.upgrade()
    inserted, commit = asyncio.Event(), asyncio.Event()

    async def open_case(tx: Tx) -> None:
        await case_store.open_case(tx, case_id="SEC-2026-0001", reporter="r@x", subject="s",
                                   timeline=timeline(tx), reporter_fingerprint=None)

    async def winner() -> None:
        async with store.unit() as tx:
            await open_case(tx)
            inserted.set()
            await commit.wait()

    async def loser() -> None:
        await inserted.wait()
        async with store.unit() as tx:
            with pytest.raises(TemporaryError):
                await open_case(tx)
            assert [c.id for c in await case_store.list_cases(tx)] == ["SEC-2026-0001"]

    try:
        tasks = [asyncio.create_task(winner()), asyncio.create_task(loser())]
        await inserted.wait()
        async with store.engine.connect() as probe:  # until the loser waits on a lock
            while not tasks[1].done() and not await probe.scalar(text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted")):
                await probe.rollback()
        commit.set()
        await asyncio.gather(*tasks)
    finally:
        await store.close()


async def test_a_current_party_is_added_once_and_again_after_removal(store: Store) -> None:
    async with store.unit() as tx:
        await case_store.open_case(tx, case_id="SEC-2026-0001", reporter="r@x", subject="s",
                                   timeline=timeline(tx), reporter_fingerprint=None)

    async def add(tx: Tx) -> object:
        return await case_store.add_party(tx, "SEC-2026-0001", "p@x", "P", "cli:a")
    await lost_twice(store, add, Refused)
    async with store.unit() as tx:
        await case_store.remove_party(tx, "SEC-2026-0001", "p@x", "cli:a")
        await add(tx)
        assert [p.address for p in await case_store.parties(tx, "SEC-2026-0001")] == ["p@x"]


async def test_a_member_name_or_address_is_current_once(store: Store) -> None:
    async def add(tx: Tx) -> object:
        return await tx.add_member("Vendor", "security@vendor.example", None)
    await lost_twice(store, add, Refused)
    async with store.unit() as tx:
        with pytest.raises(Refused):
            await tx.add_member("Vendor", "other@vendor.example", None)
        assert [m.name for m in await tx.members()] == ["Vendor"]


async def test_an_advisory_number_exists_once(store: Store) -> None:
    async def create(tx: Tx) -> object:
        await adv_ops.insert_advisory(tx, number=7, case_id=None, embargo_at=tx.now,
                                      restrictive=False, actor="cli:a", now=tx.now)
        return None
    await lost_twice(store, create, Refused)


async def test_an_advisory_version_exists_once(store: Store) -> None:
    async with store.unit() as tx:
        await adv_ops.insert_advisory(tx, number=7, case_id=None, embargo_at=tx.now,
                                      restrictive=False, actor="cli:a", now=tx.now)

    async def add(tx: Tx) -> object:
        await adv_ops.add_version(tx, adv_ops.VersionRow(7, 1, "{}", None, b"x", tx.now, None,
                                                         tx.now, "cli:a"))
        return None
    await lost_twice(store, add, TemporaryError)


async def test_an_inbound_message_is_held_once(store: Store) -> None:
    async def hold(tx: Tx) -> object:
        return await held_ops.insert_held(
            tx, post_id=5, list_name="discuss", sender="a@x", subject="s", message_id=None,
            raw=b"x", rule="default", reason="r", hits=(), now=tx.now,
            expires_at=tx.now + timedelta(days=1))
    await lost_twice(store, hold, TemporaryError)


async def test_an_inbound_message_joins_an_application_once(store: Store) -> None:
    async with store.unit() as tx:
        app_id = await app_ops.create(tx, list_name="applications", org_key="v.example",
                                      organisation=None, sender="a@v.example", fields="{}",
                                      checklist="{}", complete=False, now=tx.now)

    async def add(tx: Tx) -> object:
        await app_ops.add_message(tx, app_id=app_id, inbound_id=9, sender="a@v.example",
                                  subject="s", message_id=None, body_hash="h",
                                  duplicate=False, now=tx.now)
        return None
    await lost_twice(store, add, TemporaryError)


async def test_a_reply_token_is_issued_once(store: Store) -> None:
    async def issue(tx: Tx) -> object:
        return await decision_ops.insert_token(
            tx, digest="d" * 64, kind="held", item_id="1", list_name="discuss",
            issued_to=None, now=tx.now, expires_at=tx.now + timedelta(days=1))
    await lost_twice(store, issue, TemporaryError)


async def test_a_decidable_item_is_opened_once_without_error(store: Store) -> None:
    async def open_item(tx: Tx) -> object:
        await decision_ops.open_item(tx, "held", "1", "discuss", tx.now)
        return None
    async with store.unit() as tx:
        await open_item(tx)
        await open_item(tx)
        item = await decision_ops.get_item(tx, "held", "1")
        assert item is not None and item.state == decision_ops.OPEN
