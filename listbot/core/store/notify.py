"""Wake-ups between daemons sharing one PostgreSQL: LISTEN/NOTIFY, polling as backstop.

A notification is sent inside the transaction that creates work, so it is delivered
only when that work is committed (PostgreSQL holds NOTIFY until COMMIT).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url

from listbot.core.store.unit import Unit

log = structlog.get_logger("listbot.notify")

INBOUND = "listbot_inbound"
OUTBOX = "listbot_outbox"


async def notify(tx: Unit, channel: str) -> None:
    if not tx.sqlite:
        await tx.conn.execute(text("SELECT pg_notify(:c, '')"), {"c": channel})


def libpq_url(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Listener:
    """Holds one LISTEN connection; calls the waker of a channel on every notification."""

    def __init__(self, url: str, wakers: Mapping[str, Callable[[], None]]) -> None:
        self.url = libpq_url(url)
        self.wakers = wakers

    async def run(self, stopping: asyncio.Event) -> None:
        import psycopg  # only daemons on PostgreSQL listen: SQLite ones never load it

        delay = 0.5
        while not stopping.is_set():
            try:
                await self._listen(stopping)
                delay = 0.5
            except (psycopg.Error, OSError) as exc:
                log.warning("notify.listener_lost", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def _listen(self, stopping: asyncio.Event) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            for channel in self.wakers:
                await conn.execute(f'LISTEN "{channel}"')
            # Work may have been committed while we were not listening.
            for wake in self.wakers.values():
                wake()
            gen = conn.notifies()
            stop = asyncio.ensure_future(stopping.wait())
            try:
                while not stopping.is_set():
                    nxt = asyncio.ensure_future(anext(gen))
                    done, _ = await asyncio.wait({nxt, stop},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if nxt not in done:
                        nxt.cancel()
                        break
                    waker = self.wakers.get(nxt.result().channel)
                    if waker is not None:
                        waker()
            finally:
                stop.cancel()
