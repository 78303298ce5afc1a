"""The inbound worker: claims stored messages, routes them to a list handler, and
commits every effect of a message in ONE transaction together with its "done" mark.

A handler does its slow work first (parsing, gpg) and returns the effects to apply;
a handler failure quarantines the message with its error, never drops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from datetime import timedelta
from itertools import groupby
from typing import Protocol

import structlog

from listbot.core.errors import TemporaryError
from listbot.core.metrics import Metrics
from listbot.core.model import Inbound, RecipientRole
from listbot.core.store import Store, Tx
from listbot.core.waker import Waker

log = structlog.get_logger("listbot.worker")

Effects = Callable[[Tx], Awaitable[None]]


class Handler(Protocol):
    """Handles one list address. A handler whose messages are decided each on its own
    (no message's handling reads another's effects) sets `batchable = True`, and the
    worker commits consecutive such messages together. A handler with a `cycle()`
    context manager has it entered around each such run (to share reads within it)."""

    async def handle(self, msg: Inbound) -> Effects: ...


class LeaseLost(Exception):
    """Another worker took the message over; our effects are rolled back."""


class Worker:
    def __init__(self, *, store: Store, handlers: Mapping[tuple[str, RecipientRole], Handler],
                 owner: str, lease_seconds: int, batch: int, poll_interval: float,
                 waker: Waker, on_committed: Callable[[frozenset[str]], None],
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
        for batchable, run in groupby(claimed, key=self._batchable):
            if not batchable:
                for msg in run:
                    await self.process(msg)
                continue
            # Independent messages (each decided on its own) share one commit, and a
            # handler's cycle() around them: nothing else commits in between.
            with self._cycle():
                batch = [(msg, effects) for msg in run
                         if (effects := await self._prepare(msg, self._handler(msg)))
                         is not None]
                await self._commit_batch(batch)
        return len(claimed)

    def _handler(self, msg: Inbound) -> Handler | None:
        return self.handlers.get((msg.list_name, msg.role))

    def _batchable(self, msg: Inbound) -> bool:
        return bool(getattr(self._handler(msg), "batchable", False))

    def _cycle(self) -> ExitStack:
        stack = ExitStack()
        for handler in {id(h): h for h in self.handlers.values()}.values():
            if (enter := getattr(handler, "cycle", None)) is not None:
                stack.enter_context(enter())
        return stack

    async def process(self, msg: Inbound) -> None:
        effects = await self._prepare(msg, self._handler(msg))
        if effects is not None:
            await self._commit_batch([(msg, effects)])

    async def _prepare(self, msg: Inbound, handler: Handler | None) -> Effects | None:
        try:
            if handler is None:
                raise LookupError(f"no handler for {msg.list_name}/{msg.role.value}")
            return await handler.handle(msg)
        except Exception as exc:
            await self._fail(msg, exc)
            return None

    async def _commit_batch(self, batch: list[tuple[Inbound, Effects]]) -> None:
        """Shared transactions for the batch, a savepoint per message: one message's
        failure rolls back only its own effects."""
        if not batch:
            return  # nothing committed: waking delivery and reminders would be wasted work
        lists = frozenset(msg.list_name for msg, _ in batch)
        while batch:
            taken = await self._commit_some(batch)
            batch = batch[taken:]
        self.on_committed(lists)

    async def _commit_some(self, batch: list[tuple[Inbound, Effects]]) -> int:
        """Commits a prefix of the batch and says how long it was: the transaction ends
        early when an arrival waits for the writer, so senders are not kept waiting."""
        failed: list[tuple[Inbound, BaseException]] = []
        taken = 0
        try:
            async with self.store.unit() as tx:
                for msg, effects in batch:
                    taken += 1
                    try:
                        async with tx.savepoint():
                            await effects(tx)
                            if not await tx.finish_inbound(msg.id, self.owner):
                                raise LeaseLost(msg.id)
                    except Exception as exc:
                        failed.append((msg, exc))
                    if self.store.arrivals_waiting():
                        break
        except Exception as whole:
            for msg, _ in batch[:taken]:
                await self._fail(msg, whole)
            return taken
        failed_ids = {m.id for m, _ in failed}
        for msg, error in failed:
            await self._fail(msg, error)
        for msg, _ in batch[:taken]:
            if msg.id not in failed_ids:
                log.info("worker.done", inbound_id=msg.id, list=msg.list_name)
                if self.metrics is not None:
                    self.metrics.handled(msg.list_name, "done")
        return taken

    async def _fail(self, msg: Inbound, exc: BaseException) -> None:
        bound = log.bind(inbound_id=msg.id, list=msg.list_name, role=msg.role.value)
        if isinstance(exc, LeaseLost):
            bound.warning("worker.lease_lost")
            return
        if isinstance(exc, TemporaryError):
            # Leave the claim to expire: the message is retried, not quarantined.
            bound.warning("worker.temporary_failure", error=str(exc))
            return
        error = f"{type(exc).__name__}: {exc}"
        bound.error("worker.quarantined", error=error)
        if self.metrics is not None:
            self.metrics.handled(msg.list_name, "quarantined")
        try:
            await self.store.quarantine(msg.id, self.owner, error)
        except Exception as inner:
            bound.error("worker.quarantine_failed", error=type(inner).__name__)
