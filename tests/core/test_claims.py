"""A restarted daemon takes back the claims its earlier run left, at once, and never the
claims of another instance or of a live daemon (docs/design.md "Storage and several
daemons")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from listbot.core.clock import FakeClock
from listbot.core.model import (
    Audience,
    InboundState,
    OutboxState,
    OutgoingMessage,
    RecipientRole,
    Route,
)
from listbot.core.store import Arrival, Reclaimed, Store

LEASE = timedelta(seconds=300)
ROUTE = Route("discuss", RecipientRole.POST, None)
# The instance "me" in its killed run, another instance, and one whose name only
# begins like it.
OWNERS = ["me:host-a:101:aaaaaa", "other:host-b:202:bbbbbb", "me:too:host-a:303:cccccc"]


async def claim_one_each(store: Store) -> tuple[list[int], list[int]]:
    await store.store_arrivals([
        Arrival("lmtp", "a@x.example", "discuss@lists.example.org", ROUTE,
                f"Subject: {n}\r\n\r\nbody {n}\r\n".encode()) for n in range(len(OWNERS))])
    async with store.unit() as tx:
        await tx.enqueue(OutgoingMessage(
            Audience.TEAM, "discuss-bounces@lists.example.org",
            ("alice@example.org", "bob@example.org", "carol@example.org"), b"Subject: x\r\n\r\n"))
    inbound, outbox = [], []
    for owner in OWNERS:
        (msg,) = await store.claim_inbound(owner, LEASE, 1)
        (items, _) = await store.claim_outbox(owner, LEASE, 1)
        inbound.append(msg.id)
        outbox.append(items[0].id)
    return inbound, outbox


async def test_a_restart_takes_back_its_own_claims_and_no_one_elses(
        store: Store, db_url: str, clock: FakeClock) -> None:
    inbound, outbox = await claim_one_each(store)
    restarted = Store.open(db_url, clock)
    try:
        assert await restarted.take_back_claims("me") == Reclaimed(inbound=1, outbox=1)
        states = {r["id"]: r["state"] for r in
                  await restarted.inbound_listing(list(InboundState))}
        assert states == {inbound[0]: "new", inbound[1]: "claimed", inbound[2]: "claimed"}
        rows = {i.id: i.state for i in await restarted.outbox_listing(list(OutboxState))}
        assert rows == {outbox[0]: OutboxState.PENDING, outbox[1]: OutboxState.SENDING,
                        outbox[2]: OutboxState.SENDING}
        # Claimable now, well inside the lease of the run that died.
        me = "me:host-a:404:dddddd"
        assert [m.id for m in await restarted.claim_inbound(me, LEASE, 10)] == [inbound[0]]
        items, _ = await restarted.claim_outbox(me, LEASE, 10)
        assert [i.id for i in items] == [outbox[0]]
        async with restarted.unit() as tx:
            assert await tx.finish_inbound(inbound[0], me)
        # The other instances' claims still expire by lease, and only then move on.
        assert await restarted.claim_inbound("next:host-c:505:eeeeee", LEASE, 10) == []
        clock.advance(LEASE + timedelta(seconds=1))
        taken = await restarted.claim_inbound("next:host-c:505:eeeeee", LEASE, 10)
        assert sorted(m.id for m in taken) == sorted(inbound[1:])
    finally:
        await restarted.close()


@pytest.mark.postgres
async def test_a_live_daemon_under_the_same_name_keeps_its_claims(
        pg_url: str, clock: FakeClock) -> None:
    live = Store.open(pg_url, clock)
    await live.upgrade()
    second = Store.open(pg_url, clock)
    try:
        assert await live.take_back_claims("me") == Reclaimed(inbound=0, outbox=0)
        inbound, outbox = await claim_one_each(live)
        assert await second.take_back_claims("me", patience=0.5) is None, "the name is in use"
        states = {r["id"]: r["state"] for r in await second.inbound_listing(list(InboundState))}
        assert states[inbound[0]] == "claimed"
        await live.close()
        # Once that daemon is gone its claims are this one's to take back.
        assert await second.take_back_claims("me") == Reclaimed(inbound=1, outbox=1)
        assert outbox
    finally:
        await second.close()
