"""The inbound worker: claims stored messages, routes them to a list handler, and
commits every effect of a message in ONE transaction together with its "done" mark.

A handler does its slow work first (parsing, gpg) and returns the effects to apply;
a handler failure quarantines the message with its error, never drops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Protocol

import structlog

from listbot.errors import TemporaryError
from listbot.metrics import Metrics
from listbot.model import Inbound, RecipientRole
from listbot.store import Store, Tx
from listbot.waker import Waker

log = structlog.get_logger("listbot.worker")

Effects = Callable[[Tx], Awaitable[None]]


class Handler(Protocol):
    async def handle(self, msg: Inbound) -> Effects: ...


class LeaseLost(Exception):
    """Another worker took the message over; our effects are rolled back."""


class Worker:
    def __init__(self, *, store: Store, handlers: Mapping[tuple[str, RecipientRole], Handler],
                 owner: str, lease_seconds: int, batch: int, poll_interval: float,
                 waker: Waker, on_committed: Callable[[], None],
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.store = store
        self.handlers = handlers
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self.poll_interval = poll_interval
        self.waker = waker
        self.on_committed = on_committed

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                done = await self.run_once()
            except Exception as exc:  # the database may be down: back off, keep running
                log.error("worker.cycle_failed", error=type(exc).__name__, detail=str(exc))
                done = 0
            if done == 0:
                await self.waker.wait(self.poll_interval, stopping)

    async def run_once(self) -> int:
        claimed = await self.store.claim_inbound(self.owner, self.lease, self.batch)
        for msg in claimed:
            await self.process(msg)
        return len(claimed)

    async def process(self, msg: Inbound) -> None:
        bound = log.bind(inbound_id=msg.id, list=msg.list_name, role=msg.role.value)
        handler = self.handlers.get((msg.list_name, msg.role))
        try:
            if handler is None:
                raise LookupError(f"no handler for {msg.list_name}/{msg.role.value}")
            effects = await handler.handle(msg)
            async with self.store.unit() as tx:
                await effects(tx)
                if not await tx.finish_inbound(msg.id, self.owner):
                    raise LeaseLost(msg.id)
        except LeaseLost:
            bound.warning("worker.lease_lost")
            return
        except TemporaryError as exc:
            # Leave the claim to expire: the message is retried, not quarantined.
            bound.warning("worker.temporary_failure", error=str(exc))
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            bound.error("worker.quarantined", error=error)
            if self.metrics is not None:
                self.metrics.handled(msg.list_name, "quarantined")
            try:
                await self.store.quarantine(msg.id, self.owner, error)
            except Exception as inner:
                bound.error("worker.quarantine_failed", error=type(inner).__name__)
            return
        bound.info("worker.done")
        if self.metrics is not None:
            self.metrics.handled(msg.list_name, "done")
        self.on_committed()
