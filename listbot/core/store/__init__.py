"""The store: the only place that talks to the database. Every operation is one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from listbot.core.clock import Clock
from listbot.core.errors import TemporaryError
from listbot.core.model import (
    AuditEntry,
    Inbound,
    InboundState,
    Member,
    OutboxItem,
    OutboxState,
    OutgoingMessage,
)
from listbot.core.store import audit as audit_ops
from listbot.core.store import claims as claim_ops
from listbot.core.store import inbound as inbound_ops
from listbot.core.store import members as member_ops
from listbot.core.store import outbox as outbox_ops
from listbot.core.store.claims import InstanceNameLock, Reclaimed
from listbot.core.store.engine import (
    SingleInstanceLock,
    connection_failure,
    is_sqlite,
    make_engine,
    make_read_engine,
    pending_migrations_sync,
    sqlite_path,
    upgrade_sync,
)
from listbot.core.store.inbound import Arrival
from listbot.core.store.notify import INBOUND, OUTBOX, Listener, notify
from listbot.core.store.unit import Unit
from listbot.core.store.writer import WriterQueue

__all__ = ["Arrival", "Listener", "Reclaimed", "Store", "Tx"]


class Tx(Unit):
    """One open transaction. Handlers write every effect through it; it commits as a whole.
    Capabilities pass it to the store's functions; its connection is the store's alone."""

    async def enqueue(self, msg: OutgoingMessage) -> list[int]:
        ids = await outbox_ops.enqueue(self, msg, self.now)
        if ids:
            await notify(self, OUTBOX)
        return ids

    async def hold(self, ids: Sequence[int]) -> None:
        """Queued rows that must wait for a person (a member without a usable key)."""
        await outbox_ops.hold(self, ids)

    async def audit(self, actor: str, action: str, subject: str,
                    detail: Mapping[str, Any] | None = None) -> None:
        await audit_ops.append(self, at=self.now, actor=actor, action=action,
                               subject=subject, detail=detail)

    async def members(self) -> list[Member]:
        return await member_ops.current(self)

    async def notices_since(self, recipients: Collection[str], since: datetime) -> int:
        return await outbox_ops.notices_since(self, recipients, since)

    async def settle(self, ids: Sequence[int], owner: str, state: OutboxState,
                     reply: str | None, next_attempt_at: datetime | None = None) -> int:
        return await outbox_ops.settle(self, ids, owner, state, reply=reply,
                                       now=self.now, next_attempt_at=next_attempt_at)

    async def insert_arrivals(self, arrivals: Sequence[Arrival]) -> list[int]:
        """Arrivals stored in this transaction (for intake whose own bookkeeping must
        commit with them; SMTP/LMTP go through Store.store_arrivals)."""
        ids = await inbound_ops.insert_arrivals(self, arrivals, self.now)
        await notify(self, INBOUND)
        return ids

    async def quarantine_inbound(self, msg_id: int, error: str) -> bool:
        return await inbound_ops.quarantine(self, msg_id, None, error, self.now)

    async def finish_inbound(self, msg_id: int, owner: str) -> bool:
        return await inbound_ops.finish(self, msg_id, owner, self.now)

    async def add_member(self, name: str, address: str, fingerprint: str | None) -> Member:
        return await member_ops.add(self, name, address, fingerprint, self.now)

    async def remove_member(self, name_or_address: str, reason: str) -> Member:
        return await member_ops.remove(self, name_or_address, reason, self.now)

    async def set_member_key(self, name: str, fingerprint: str | None) -> Member:
        return await member_ops.set_fingerprint(self, name, fingerprint)

    async def member_history(self) -> list[dict[str, Any]]:
        return await member_ops.history(self)


class Store:
    def __init__(self, engine: AsyncEngine, url: str, clock: Clock) -> None:
        self.engine = engine
        self.read_engine = make_read_engine(url, engine)
        self.url = url
        self.clock = clock
        self.sqlite = is_sqlite(url)
        self._lock: SingleInstanceLock | None = None
        self._committer: _GroupCommitter | None = None
        self._writer = WriterQueue() if self.sqlite else None
        self._name_lock: InstanceNameLock | None = None

    @classmethod
    def open(cls, url: str, clock: Clock) -> Store:
        return cls(make_engine(url), url, clock)

    async def close(self) -> None:
        if self._committer is not None:
            await self._committer.stop()
        if self._name_lock is not None:
            await self._name_lock.release()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self._lock is not None:
            self._lock.release()

    def listener(self, *, inbound: Callable[[], None], outbox: Callable[[], None]
                 ) -> Listener | None:
        """Cross-daemon wake-ups; None on SQLite (one daemon per file)."""
        if self.sqlite:
            return None
        return Listener(self.url, {INBOUND: inbound, OUTBOX: outbox})

    def claim_single_instance(self) -> None:
        path = sqlite_path(self.url) if self.sqlite else None
        if path is not None:
            self._lock = SingleInstanceLock(path)
            self._lock.acquire()

    async def take_back_claims(self, instance: str,
                               patience: float = 5.0) -> Reclaimed | None:
        """At start-up: the claims an earlier run of this instance left, back to the
        queue now rather than when their lease runs out. None (nothing touched) when
        another live daemon holds the name on this PostgreSQL (after `patience` s)."""
        if not self.sqlite:  # on SQLite claim_single_instance() already holds the file
            lock = InstanceNameLock(self.engine)
            try:
                held = await lock.acquire(instance, patience)
            except (OperationalError, DBAPIError, OSError) as exc:
                raise TemporaryError(f"database unavailable: {type(exc).__name__}") from exc
            if not held:
                return None
            self._name_lock = lock
        async with self.unit() as tx:
            return await claim_ops.release_instance(tx, instance)

    @asynccontextmanager
    async def unit(self, *, urgent: bool = False) -> AsyncIterator[Tx]:
        """A transaction; database trouble surfaces as TemporaryError (retry later).
        `urgent`: someone waits on this commit (a 250), so it goes before background work."""
        if self._writer is None:  # PostgreSQL: row locks, no single writer
            async with self._transaction() as tx:
                yield tx
            return
        async with self._writer.hold(urgent=urgent), self._transaction() as tx:
            yield tx

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Tx]:
        try:
            async with self.engine.begin() as conn:
                yield Tx(conn, self.clock.now())
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise connection_failure(exc) from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A read-only transaction that never waits for writers (SQLite WAL readers)."""
        try:
            async with self.read_engine.begin() as conn:
                yield Tx(conn, self.clock.now())
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise connection_failure(exc) from exc

    async def upgrade(self) -> None:
        async with self.unit() as tx:
            await tx.conn.run_sync(upgrade_sync)

    async def pending_migrations(self) -> list[str]:
        async with self.unit() as tx:
            return await tx.conn.run_sync(pending_migrations_sync)

    # --- intake -----------------------------------------------------------------------
    def arrivals_waiting(self) -> bool:
        """An arrival's commit waits for SQLite's one writer (never on PostgreSQL)."""
        return self._writer is not None and self._writer.urgent_waiting

    async def store_arrivals(self, arrivals: Sequence[Arrival]) -> list[int]:
        """Commit arrivals; concurrent callers share one commit (group commit)."""
        if self._committer is None:
            self._committer = _GroupCommitter(self)
        return await self._committer.submit(arrivals)

    async def _insert_batch(self, arrivals: Sequence[Arrival]) -> list[int]:
        async with self.unit(urgent=True) as tx:
            return await tx.insert_arrivals(arrivals)

    async def claim_inbound(self, owner: str, lease: timedelta, limit: int) -> list[Inbound]:
        async with self.unit() as tx:
            return await inbound_ops.claim(tx, owner, tx.now, lease, limit)

    async def quarantine(self, msg_id: int, owner: str | None, error: str) -> bool:
        async with self.unit() as tx:
            done = await inbound_ops.quarantine(tx, msg_id, owner, error, tx.now)
            if done:
                await tx.audit("listbot", "inbound.quarantined", f"inbound:{msg_id}",
                               {"error": error[:500]})
            return done

    async def retry_inbound(self, msg_id: int, actor: str) -> bool:
        async with self.unit() as tx:
            done = await inbound_ops.retry(tx, msg_id)
            if done:
                await tx.audit(actor, "inbound.retry", f"inbound:{msg_id}")
            return done

    async def inbound_listing(self, states: Sequence[InboundState]) -> list[dict[str, Any]]:
        async with self.read() as tx:
            return await inbound_ops.listing(tx, states)

    async def inbound_raw(self, msg_id: int) -> bytes | None:
        async with self.read() as tx:
            return await inbound_ops.get_raw(tx, msg_id)

    # --- outbox -----------------------------------------------------------------------
    async def claim_outbox(self, owner: str, lease: timedelta,
                           limit: int) -> tuple[list[OutboxItem], dict[int, bytes]]:
        async with self.unit() as tx:
            return await outbox_ops.claim(tx, owner, tx.now, lease, limit)

    async def settle(self, ids: Sequence[int], owner: str, state: OutboxState,
                     reply: str | None, next_attempt_at: datetime | None = None) -> int:
        async with self.unit() as tx:
            return await outbox_ops.settle(tx, ids, owner, state, reply=reply,
                                           now=tx.now, next_attempt_at=next_attempt_at)

    async def outbox_listing(self, states: Sequence[OutboxState]) -> list[OutboxItem]:
        async with self.read() as tx:
            return await outbox_ops.listing(tx, states)

    async def next_outbox_due(self) -> datetime | None:
        async with self.read() as tx:
            return await outbox_ops.next_due(tx)

    async def queue_counts(self) -> dict[str, dict[str, int]]:
        async with self.read() as tx:
            return {"inbound": await inbound_ops.counts(tx),
                    "outbox": await outbox_ops.counts(tx)}

    # --- members and audit --------------------------------------------------------------
    async def members(self) -> list[Member]:
        async with self.read() as tx:
            return await member_ops.current(tx)

    async def audit_listing(self, *, subject: str | None = None,
                            action_prefix: str | None = None,
                            limit: int = 200) -> list[AuditEntry]:
        async with self.read() as tx:
            return await audit_ops.listing(tx, subject=subject,
                                           action_prefix=action_prefix, limit=limit)


class _GroupCommitter:
    """Batches concurrent arrivals into one transaction: one fsync serves many 250s."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[Sequence[Arrival], asyncio.Future[list[int]]]] = []
        # The batch whose commit is running: stop() must fail it too, or its senders'
        # DATA commands wait for an answer that never comes.
        self._in_flight: list[tuple[Sequence[Arrival], asyncio.Future[list[int]]]] = []
        self._stopped = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, arrivals: Sequence[Arrival]) -> list[int]:
        if self._stopped:
            raise TemporaryError("store closing")
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((arrivals, future))
        self._wake.set()
        return await future

    async def stop(self) -> None:
        self._stopped = True
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        # A cancelled commit may or may not have landed; 451 makes the sender retry,
        # which at worst stores the message twice but never loses it.
        waiting, self._in_flight, self._pending = self._in_flight + self._pending, [], []
        _fail(waiting, TemporaryError("store closing"))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._in_flight, self._pending = self._pending, []
            if self._in_flight:
                await self._commit(self._in_flight)
            self._in_flight = []

    async def _commit(self, batch: list[tuple[Sequence[Arrival], asyncio.Future[list[int]]]]
                      ) -> None:
        flat = [a for arrivals, _ in batch for a in arrivals]
        try:
            ids = await self._store._insert_batch(flat)
        except Exception as exc:  # every waiter must learn of the failure: 451, not 250
            _fail(batch, exc)
            return
        offset = 0
        for arrivals, future in batch:
            if not future.done():
                future.set_result(ids[offset:offset + len(arrivals)])
            offset += len(arrivals)


def _fail(batch: Sequence[tuple[Sequence[Arrival], asyncio.Future[list[int]]]],
          exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
