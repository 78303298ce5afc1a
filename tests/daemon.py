"""Helpers to run the real daemon in-process and talk to it over real sockets."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from listbot.app import App
from listbot.core.clock import Clock
from listbot.core.model import InboundState, OutboxItem, OutboxState
from listbot.settings import Settings

MEMBERS = [("Vendor A", "security@vendor-a.example"), ("Vendor B", "psirt@vendor-b.example"),
           ("Vendor C", "secalert@vendor-c.example")]


def post(sender: str, subject: str = "Re: [XSA-465] backport",
         body: str = "The backport applies and builds cleanly.\r\n",
         to: str = "discuss@lists.example.org", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((sender, subject, body)))}@test.example>\r\n{extra}"
            f"\r\n{body}").encode()


async def add_members(app: App, members: Sequence[tuple[str, str]] = MEMBERS) -> None:
    async with app.store.unit() as tx:
        for name, address in members:
            await tx.add_member(name, address, None)


@asynccontextmanager
async def running(cfg: Settings, clock: Clock, *,
                  members: Sequence[tuple[str, str]] = MEMBERS) -> AsyncIterator[App]:
    """The daemon started in-process with these members, stopped on exit whatever happens."""
    app = App.create(cfg, clock=clock)
    await app.start()
    try:
        await add_members(app, members)
        yield app
    finally:
        await app.stop()


def _lmtp_send(port: int, sender: str, rcpts: Sequence[str], data: bytes) -> dict[str, object]:
    with smtplib.LMTP("127.0.0.1", port) as client:
        return dict(client.sendmail(sender, list(rcpts), data))


async def lmtp_send(app: App, sender: str, rcpts: Sequence[str], data: bytes) -> dict[str, object]:
    return await asyncio.to_thread(_lmtp_send, app.bound["lmtp"][1], sender, rcpts, data)


async def raw_session(port: int, steps: Sequence[tuple[bytes, int]]) -> list[str]:
    """Speak the protocol by hand (for what smtplib refuses to send).

    Each step is (bytes to send, how many replies to read); the greeting is read first.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def read_reply() -> str:
        text = ""
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode()
            text += line
            if len(line) < 4 or line[3] != "-":
                return text.strip()

    replies = [await read_reply()]
    for chunk, count in steps:
        writer.write(chunk)
        await writer.drain()
        for _ in range(count):
            replies.append(await read_reply())
    writer.close()
    return replies


async def settle(app: App, timeout: float = 10.0) -> None:
    """Wait until no inbound message is waiting to be handled."""

    async def idle() -> None:
        while True:
            counts = (await app.store.queue_counts())["inbound"]
            if not counts.get(InboundState.NEW.value) and not counts.get(
                    InboundState.CLAIMED.value):
                return
            app.inbound_waker.wake()
            await asyncio.sleep(0.02)

    await asyncio.wait_for(idle(), timeout)


async def outbox_settled(app: App, timeout: float = 10.0) -> None:
    """Wait until every outbox row has its outcome recorded (the sink may see a message
    a moment before the delivery worker commits that it was accepted)."""
    from listbot.core.model import OutboxState

    async def idle() -> None:
        while await app.store.outbox_listing([OutboxState.PENDING, OutboxState.SENDING]):
            app.outbound_waker.wake()
            await asyncio.sleep(0.02)

    await asyncio.wait_for(idle(), timeout)


async def outbox_in(app: App, state: OutboxState, count: int = 1,
                    timeout: float = 10.0) -> list[OutboxItem]:
    """Until at least `count` outbox rows are in `state`; those rows."""
    async def reached() -> list[OutboxItem]:
        while len(items := await app.store.outbox_listing([state])) < count:
            await asyncio.sleep(0.02)
        return items

    return await asyncio.wait_for(reached(), timeout)


async def deferred_once(app: App, rcpt: str, timeout: float = 10.0) -> None:
    """Until the relay has deferred `rcpt`'s copy once (it stays pending for a retry)."""
    async def tried() -> None:
        while not [i for i in await app.store.outbox_listing([OutboxState.PENDING])
                   if i.recipient == rcpt and i.attempts > 0]:
            app.outbound_waker.wake()
            await asyncio.sleep(0.02)
    await asyncio.wait_for(tried(), timeout)
