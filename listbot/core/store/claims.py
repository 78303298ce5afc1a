"""Claims a daemon left behind: taken back when the same instance starts again.

A claim's owner is `instance:host:pid:token` (listbot.app.make_owner). A daemon that is
killed leaves its claims to run out their lease; restarted under the same instance name
it takes them back at once instead, since the only daemon that may hold claims under
that name is itself. Claims of other instances still expire by lease.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from listbot.core.model import InboundState, OutboxState
from listbot.core.store.schema import inbound, outbox
from listbot.core.store.unit import Unit


async def claim_rows(tx: Unit, table: Table, claimable: ColumnElement[bool], *,
                     order: tuple[ColumnElement[Any], ...], limit: int,
                     values: dict[str, Any]) -> list[Row[Any]]:
    """Claim at most `limit` claimable rows of `table` (inbound or outbox), in `order`,
    skipping rows another daemon holds; the rows as claimed.

    The ids are picked (and locked) first, in a statement of their own: inside the
    UPDATE, PostgreSQL ran the LIMIT subquery once per candidate row and so claimed
    every claimable row whatever the limit."""
    ids = (select(table.c.id).where(claimable).order_by(*order).limit(limit)
           .with_for_update(skip_locked=True))
    picked = list(await tx.conn.scalars(ids))
    if not picked:
        return []
    result = await tx.conn.execute(
        update(table).where(table.c.id.in_(picked), claimable)
        .values(attempts=table.c.attempts + 1, **values).returning(*table.c))
    return list(result)


@dataclass(frozen=True)
class Reclaimed:
    inbound: int
    outbox: int


def instance_of(owner: str) -> str:
    """The instance name in an owner; it may itself contain ':', the rest never does."""
    return owner.rsplit(":", 3)[0]


async def _release(tx: Unit, table: Table, instance: str, claimed: str,
                   values: dict[str, Any]) -> int:
    rows = await tx.conn.execute(
        select(table.c.id, table.c.claimed_by).where(
            table.c.state == claimed,
            table.c.claimed_by.startswith(f"{instance}:", autoescape=True)))
    ids = [r.id for r in rows if instance_of(r.claimed_by) == instance]
    if not ids:
        return 0
    result = await tx.conn.execute(
        update(table).where(table.c.id.in_(ids), table.c.state == claimed)
        .values(lease_until=None, **values))
    return int(result.rowcount)


async def release_instance(tx: Unit, instance: str) -> Reclaimed:
    """Give the claims of this instance's earlier runs back to the queue, as if their
    lease had run out: what a killed run may have half done is done again."""
    return Reclaimed(
        inbound=await _release(tx, inbound, instance, InboundState.CLAIMED.value,
                               {"state": InboundState.NEW.value}),
        outbox=await _release(tx, outbox, instance, OutboxState.SENDING.value,
                              {"state": OutboxState.PENDING.value}))


class InstanceNameLock:
    """On PostgreSQL, a session advisory lock on the instance name for the daemon's
    life: a second live daemon under the same name must not take back the first one's
    claims. (SQLite needs none: one daemon per file.)"""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None
        self._name = ""

    def _key(self) -> Any:
        return func.hashtextextended(f"listbot-instance:{self._name}", 0)

    async def acquire(self, instance: str, patience: float) -> bool:
        """A daemon killed a moment ago holds the lock until PostgreSQL notices that its
        connection is gone, so a held lock is tried again for `patience` seconds."""
        self._name = instance
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while not await self._try():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.25)
        return True

    async def _try(self) -> bool:
        conn = await self.engine.connect()
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if await conn.scalar(select(func.pg_try_advisory_lock(self._key()))):
            self._conn = conn
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        """Unlocked explicitly: the connection goes back to the pool, session and all."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # A lost connection has lost its session, and the lock with it.
            with suppress(OperationalError, DBAPIError, OSError):
                await conn.scalar(select(func.pg_advisory_unlock(self._key())))
            with suppress(OperationalError, DBAPIError, OSError):
                await conn.close()
