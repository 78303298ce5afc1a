"""The store on SQLite and on PostgreSQL: leases, single finish, dedupe, members, audit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from listbot.core.case_model import MessageKind
from listbot.core.clock import FakeClock
from listbot.core.errors import NotFound, Refused, TemporaryError
from listbot.core.model import (
    Audience,
    InboundState,
    OutboxState,
    OutgoingMessage,
    RecipientRole,
    Route,
)
from listbot.core.store import Arrival, Store
from listbot.core.store import cases as case_store
from listbot.core.store import inbound as inbound_ops
from listbot.core.store import roster as roster_ops
from listbot.core.store.unit import Unit

ROUTE = Route("discuss", RecipientRole.POST, None)
LEASE = timedelta(seconds=60)


def arrival(n: int = 0) -> Arrival:
    return Arrival("lmtp", "a@x.example", "discuss@lists.example.org", ROUTE,
                   f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())


async def test_upgrade_is_idempotent_and_nothing_pending(store: Store) -> None:
    await store.upgrade()
    assert await store.pending_migrations() == []


async def test_concurrent_arrivals_all_committed_each_id_its_own_message(store: Store) -> None:
    # Callers of one group commit get their ids back from one multi-row INSERT: each id
    # must name that caller's message, also with several recipients (LMTP) per caller.
    batches = [[arrival(i * 10 + k) for k in range(1 + i % 3)] for i in range(40)]
    results = await asyncio.gather(*(store.store_arrivals(b) for b in batches))
    ids = [i for r in results for i in r]
    assert len(set(ids)) == len(ids) == sum(len(b) for b in batches)
    for batch, got in zip(batches, results, strict=True):
        assert [await store.inbound_raw(i) for i in got] == [a.raw for a in batch]
    rows = await store.inbound_listing([InboundState.NEW])
    assert len(rows) == len(ids)


async def test_claim_is_exclusive_until_lease_expires(store: Store, clock: FakeClock) -> None:
    await store.store_arrivals([arrival(1), arrival(2)])
    first = await store.claim_inbound("w1", LEASE, 10)
    assert len(first) == 2
    assert await store.claim_inbound("w2", LEASE, 10) == []
    clock.advance(LEASE + timedelta(seconds=1))
    taken = await store.claim_inbound("w2", LEASE, 10)
    assert [m.id for m in taken] == [m.id for m in first]
    assert all(m.attempts == 2 for m in taken)
    async with store.unit() as tx:
        assert not await tx.finish_inbound(first[0].id, "w1"), "the old owner must lose"
        assert await tx.finish_inbound(first[0].id, "w2")


async def test_a_claim_takes_at_most_its_limit(store: Store) -> None:
    # On PostgreSQL the claim once took every claimable row, whatever the limit.
    await store.store_arrivals([arrival(n) for n in range(6)])
    async with store.unit() as tx:
        await tx.enqueue(OutgoingMessage(Audience.TEAM, "", tuple(
            f"r{n}@x.example" for n in range(6)), b"Subject: x\r\n\r\n"))
    for owner in ("w1", "w2", "w3"):
        assert len(await store.claim_inbound(owner, LEASE, 2)) == 2
        items, raws = await store.claim_outbox(owner, LEASE, 2)
        assert len(items) == 2 and len(raws) == 1
    assert await store.claim_inbound("w4", LEASE, 2) == []
    assert await store.claim_outbox("w4", LEASE, 2) == ([], {})


async def test_finish_only_once(store: Store) -> None:
    await store.store_arrivals([arrival()])
    (msg,) = await store.claim_inbound("w", LEASE, 1)
    async with store.unit() as tx:
        assert await tx.finish_inbound(msg.id, "w")
    async with store.unit() as tx:
        assert not await tx.finish_inbound(msg.id, "w")


async def test_failed_unit_rolls_back_every_effect(store: Store) -> None:
    await store.store_arrivals([arrival()])
    (msg,) = await store.claim_inbound("w", LEASE, 1)
    with pytest.raises(RuntimeError):
        async with store.unit() as tx:
            await tx.enqueue(OutgoingMessage(Audience.NOTICE, "", ("x@y.example",), b"x"))
            await tx.audit("t", "test", "s")
            await tx.finish_inbound(msg.id, "w")
            raise RuntimeError("handler failed half-way")
    assert await store.outbox_listing(list(OutboxState)) == []
    assert await store.audit_listing() == []
    assert [r["state"] for r in await store.inbound_listing(list(InboundState))] == ["claimed"]


async def test_quarantine_and_retry(store: Store) -> None:
    await store.store_arrivals([arrival()])
    (msg,) = await store.claim_inbound("w", LEASE, 1)
    assert await store.quarantine(msg.id, "w", "ValueError: broken")
    rows = await store.inbound_listing([InboundState.QUARANTINED])
    assert rows[0]["error"] == "ValueError: broken"
    assert await store.retry_inbound(msg.id, "cli")
    assert not await store.retry_inbound(msg.id, "cli"), "only quarantined ones are retried"
    (again,) = await store.claim_inbound("w", LEASE, 1)
    assert again.id == msg.id


async def test_outbox_dedupe_key_makes_enqueue_idempotent(store: Store) -> None:
    msg = OutgoingMessage(Audience.PUBLIC, "s@x", ("a@x", "b@x"), b"m", dedupe_key="adv:1:v1")
    async with store.unit() as tx:
        assert len(await tx.enqueue(msg)) == 2
    async with store.unit() as tx:
        assert await tx.enqueue(msg) == []
    items = await store.outbox_listing([OutboxState.PENDING])
    assert sorted(i.recipient for i in items) == ["a@x", "b@x"]


async def test_outbox_not_before_defers_claim(store: Store, clock: FakeClock) -> None:
    at = clock.now() + timedelta(hours=1)
    async with store.unit() as tx:
        await tx.enqueue(OutgoingMessage(Audience.PUBLIC, "s@x", ("a@x",), b"m", not_before=at))
    assert (await store.claim_outbox("d", LEASE, 10))[0] == []
    clock.set(at)
    items, raws = await store.claim_outbox("d", LEASE, 10)
    assert [i.recipient for i in items] == ["a@x"]
    assert raws[items[0].body_id] == b"m"


async def test_settle_requires_the_claim(store: Store) -> None:
    async with store.unit() as tx:
        await tx.enqueue(OutgoingMessage(Audience.NOTICE, "s@x", ("a@x",), b"m"))
    items, _ = await store.claim_outbox("d1", LEASE, 10)
    assert await store.settle([items[0].id], "other", OutboxState.SENT, "250") == 0
    assert await store.settle([items[0].id], "d1", OutboxState.SENT, "250") == 1
    assert await store.settle([items[0].id], "d1", OutboxState.SENT, "250") == 0


async def test_members_unique_among_current_and_history_kept(store: Store) -> None:
    async with store.unit() as tx:
        await tx.add_member("Vendor", "security@vendor.example", None)
    with pytest.raises(Refused):
        async with store.unit() as tx:
            await tx.add_member("Other", "security@vendor.example", None)
    async with store.unit() as tx:
        await tx.remove_member("Vendor", "left")
    with pytest.raises(NotFound):
        async with store.unit() as tx:
            await tx.remove_member("Vendor", "again")
    async with store.unit() as tx:
        await tx.add_member("Vendor", "security@vendor.example", None)
        history = await tx.member_history()
    assert len(history) == 2
    assert [m.name for m in await store.members()] == ["Vendor"]


async def test_aware_utc_round_trip(store: Store, clock: FakeClock) -> None:
    await store.store_arrivals([arrival()])
    (msg,) = await store.claim_inbound("w", LEASE, 1)
    assert msg.received_at == clock.now()
    assert msg.received_at.utcoffset() == timedelta(0)


async def test_unreachable_database_is_temporary(clock: FakeClock) -> None:
    store = Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none", clock)
    with pytest.raises(TemporaryError):
        await store.store_arrivals([arrival()])
    await store.close()


async def test_database_errors_never_carry_the_bound_values(store: Store) -> None:
    # A failed statement's text ends in logs and quarantine notes: no message bytes there.
    for engine in (store.engine, store.read_engine):
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT :body FROM no_such_table"),
                                   {"body": "EMBARGOED-BODY"})
        assert "EMBARGOED-BODY" not in str(caught.value)


@pytest.mark.postgres
async def test_insert_if_absent_loser_of_a_race_is_a_no_op(pg_url: str,
                                                           clock: FakeClock) -> None:
    # Two daemons record the same failure: the second waits for the first's commit and
    # then does nothing — no IntegrityError that would quarantine its message.
    store = Store.open(pg_url, clock)
    await store.upgrade()
    values = {"address": "psirt@vendor.example", "member_name": None, "permanent": True,
              "source": "bounce", "source_id": "7", "now": clock.now()}
    try:
        async with store.engine.connect() as first, store.engine.connect() as second:
            await first.begin()
            await second.begin()
            assert await roster_ops.record_failure(Unit(first, clock.now()), **values)
            pid = await second.scalar(text("SELECT pg_backend_pid()"))
            loser = asyncio.create_task(roster_ops.record_failure(Unit(second, clock.now()),
                                                                  **values))
            async with store.engine.connect() as probe:  # until the second one waits
                while not loser.done() and not await probe.scalar(text(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = :pid"),
                        {"pid": pid}):
                    await probe.rollback()
            await first.commit()
            assert await loser is False
            await second.commit()
        async with store.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM delivery_failures")) == 1
    finally:
        await store.close()


async def test_case_of_a_reply_is_its_closest_known_ancestor(store: Store) -> None:
    async with store.unit() as tx:
        for case_id, mid in (("SEC-2026-0001", "<a@x>"), ("SEC-2026-0002", "<b@x>")):
            await case_store.record_message(tx, case_id, inbound_id=None, message_id=mid,
                                            kind=MessageKind.REPORT, sender="r@x",
                                            subject="s", encrypted=False, plaintext=None)
    async with store.unit() as tx:
        assert await case_store.case_by_message_ids(tx, ["<n@x>", "<b@x>", "<a@x>"]) \
            == "SEC-2026-0002"
        assert await case_store.case_by_message_ids(tx, ["<a@x>", "<b@x>"]) == "SEC-2026-0001"
        assert await case_store.case_by_message_ids(tx, ["<n@x>"]) is None
        assert await case_store.case_by_message_ids(tx, []) is None


async def test_stored_envelope_sender_knows_sources_without_an_envelope(store: Store) -> None:
    # A held post's notice must tell IMAP mail (no envelope) from an SMTP bounce ("").
    route = Route("discuss", RecipientRole.POST, None)
    imap, bounce = await store.store_arrivals([
        Arrival("imap", "", "discuss@lists.example.org", route, b"Subject: a\r\n\r\na\r\n"),
        Arrival("lmtp", "", "discuss@lists.example.org", route, b"Subject: b\r\n\r\nb\r\n")])
    async with store.read() as tx:
        assert await inbound_ops.envelope_sender(tx, imap) is None
        assert await inbound_ops.envelope_sender(tx, bounce) == ""
        assert await inbound_ops.envelope_sender(tx, 999) is None
