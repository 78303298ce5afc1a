"""The relay is one thing: down as a whole, it is probed at one backoff and the queue
waits for it; back, the whole queue goes in the first passes (docs/design.md "The path
of a message")."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from listbot.app import App
from listbot.core.clock import FakeClock
from listbot.core.model import Audience, OutboxState, OutgoingMessage
from listbot.settings import Settings
from tests.daemon import MEMBERS, outbox_in, running
from tests.sink import Sink

WAVES = 3
PER_WAVE = 40  # messages, each to every member: one transaction per message
ROWS = WAVES * PER_WAVE * len(MEMBERS)


async def queue_wave(app: App, wave: int) -> None:
    async with app.store.unit() as tx:
        for n in range(PER_WAVE):
            await tx.enqueue(OutgoingMessage(
                audience=Audience.EMBARGOED, envelope_from="discuss-bounces@lists.example.org",
                recipients=tuple(a for _, a in MEMBERS), list_name="discuss",
                raw=f"Subject: wave {wave} post {n}\r\n\r\nbody\r\n".encode(),
                message_id=f"<w{wave}.{n}@lists.example.org>"))
    app.outbound_waker.wake()


async def refusals(app: App, count: int, timeout: float = 10.0) -> None:
    """Until the delivery worker has found the relay down `count` times in a row and
    recorded what that meant for the rows it held."""
    async with asyncio.timeout(timeout):
        while (app.delivery.relay.failures < count
               or await app.store.outbox_listing([OutboxState.SENDING])):
            app.outbound_waker.wake()
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("outage", ["connection refused", "451 at MAIL FROM"])
async def test_after_an_outage_the_whole_queue_goes_at_once(
        make_config: Callable[..., Settings], clock: FakeClock, outage: str) -> None:
    sink = Sink()
    await sink.start()
    if outage == "connection refused":
        await sink.stop()  # nothing listens on its port until it comes back
    else:
        sink.mail_responder = lambda sender: "451 4.3.0 relay busy"
    cfg = make_config({"delivery": {"smtp": {"port": sink.port}}})
    async with running(cfg, clock) as app:
        # Waves queued over half an hour of outage, each found the relay down.
        for wave in range(WAVES):
            await queue_wave(app, wave)
            await refusals(app, wave + 1)
            clock.advance(timedelta(minutes=10))
        pending = await app.store.outbox_listing([OutboxState.PENDING])
        assert len(pending) == ROWS
        retry_at = app.delivery.relay.retry_at
        assert retry_at is not None
        # No row was pushed back by a backoff of its own: they all wait for the relay.
        assert all(i.next_attempt_at is not None and i.next_attempt_at <= retry_at
                   for i in pending)

        if outage == "connection refused":
            await sink.start()
        else:
            sink.mail_responder = None
        clock.advance(max(timedelta(0), retry_at - clock.now()))  # the next probe is due
        started = time.monotonic()
        app.outbound_waker.wake()
        # No more time passes on the clock: every row goes in the passes after the probe.
        await sink.wait_deliveries(ROWS, timeout=60)
        drained = time.monotonic() - started
        await outbox_in(app, OutboxState.SENT, ROWS)
        assert app.delivery.relay.retry_at is None
    await sink.stop()
    copies = Counter((rcpt, rec.data) for rcpt, rec in sink.deliveries())
    assert len(copies) == ROWS and set(copies.values()) == {1}
    # One transaction per message, and the probe: one row of a message on its own.
    assert len(sink.received) == WAVES * PER_WAVE + 1
    print(f"{outage}: {ROWS} rows drained {drained:.2f} s after the relay's probe")


async def test_a_per_recipient_4xx_keeps_its_own_backoff(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    deferred = MEMBERS[1][1]
    sink.rcpt_responder = lambda rcpt: "451 4.2.0 mailbox busy" if rcpt == deferred else None
    async with running(make_config(sink=sink), clock) as app:
        await queue_wave(app, 0)
        await sink.wait_deliveries(PER_WAVE * (len(MEMBERS) - 1))
        rows = await outbox_in(app, OutboxState.PENDING, PER_WAVE)
        assert {i.recipient for i in rows} == {deferred}
        later = clock.now() + timedelta(seconds=60)  # backoff_initial_seconds of the tests
        assert all(i.next_attempt_at == later for i in rows)
        assert app.delivery.relay.retry_at is None, "one mailbox is not the relay"
