"""A delivery killed mid-run repeats at most the transaction it was in: the outcome of
each transaction is committed before the next one starts (docs/design.md "Storage and
several daemons")."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from listbot.core.clock import SystemClock
from listbot.core.model import Audience, OutboxState, OutgoingMessage
from listbot.core.store import Store
from tests.core.test_process import add_members, write_config
from tests.daemon import MEMBERS, post
from tests.proc import Daemon
from tests.sink import Sink

pytestmark = pytest.mark.slow

POSTS = 12
ACCEPTED = 7  # transactions the relay accepts before it hangs and the daemon is killed


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def queue_posts(db_url: str) -> None:
    """Copies queued before the daemon starts, so one claim takes them all."""
    store = Store.open(db_url, SystemClock())
    try:
        async with store.unit() as tx:
            for i in range(POSTS):
                await tx.enqueue(OutgoingMessage(
                    audience=Audience.EMBARGOED, envelope_from="discuss-bounces@lists.example.org",
                    recipients=tuple(a for _, a in MEMBERS), list_name="discuss",
                    raw=post(MEMBERS[0][1], subject=f"build {i}"),
                    message_id=f"<post-{i}@lists.example.org>", dedupe_key=f"post-{i}"))
    finally:
        await store.close()


async def test_sigkill_mid_delivery_resends_nothing_the_relay_accepted(
        tmp_path: Path, db_url: str, sink: Sink) -> None:
    # One connection, so the transactions go one after another and the kill comes while
    # the relay holds transaction ACCEPTED + 1, every one before it answered with 250.
    # The lease is long: the restart takes the dead run's claims back, it does not wait.
    config = write_config(tmp_path, db_url, sink.port, {
        "delivery": {"smtp": {"pool_size": 1}}, "worker": {"lease_seconds": 300}})
    await add_members(config)
    await queue_posts(db_url)
    sink.stall, sink.stall_after = asyncio.Event(), ACCEPTED
    daemon = Daemon(config)
    await daemon.start()
    await until(lambda: sink.attempts > ACCEPTED)
    daemon.kill()
    await daemon.wait()
    assert len(sink.received) == ACCEPTED

    sink.stall = None
    restarted = Daemon(config)
    await restarted.start()
    try:
        await sink.wait_deliveries(POSTS * len(MEMBERS), timeout=30)
    finally:
        assert await restarted.terminate() == 0
    (taken,) = [e for e in restarted.events if e.get("event") == "daemon.claims_taken_back"]
    assert taken["outbox"] == (POSTS - ACCEPTED) * len(MEMBERS)
    copies = Counter((rcpt, rec.message["Subject"]) for rcpt, rec in sink.deliveries())
    assert len(copies) == POSTS * len(MEMBERS)
    assert set(copies.values()) == {1}, "a copy the relay had accepted went out again"
    store = Store.open(db_url, SystemClock())
    try:
        sent = await store.outbox_listing([OutboxState.SENT])
    finally:
        await store.close()
    assert len(sent) == POSTS * len(MEMBERS)
