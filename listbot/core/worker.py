"""The inbound worker: claims stored messages, routes each to a list handler, lets the
handler decide, and commits the decided effects in ONE transaction with the "done" mark.

A handler does its slow work while deciding (parsing, gpg) and returns the effects as
data; a handler failure quarantines the message with its error, never drops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import groupby
from typing import Any, Protocol

import structlog

from listbot.core.errors import TemporaryError
from listbot.core.metrics import Metrics
from listbot.core.model import Inbound, OutgoingMessage, RecipientRole
from listbot.core.store import Store, Tx
from listbot.core.waker import Waker

log = structlog.get_logger("listbot.worker")


class Step(Protocol):
    """One write of a message's effects, applied inside the message's transaction."""

    async def apply(self, tx: Tx) -> None: ...


@dataclass(frozen=True)
class Audit:
    action: str
    subject: str
    detail: Mapping[str, object]
    actor: str = "listbot"

    async def apply(self, tx: Tx) -> None:
        await tx.audit(self.actor, self.action, self.subject, dict(self.detail))


@dataclass(frozen=True)
class Enqueue:
    out: OutgoingMessage

    async def apply(self, tx: Tx) -> None:
        await tx.enqueue(self.out)


@dataclass(frozen=True)
class Call:
    """A write the handler's service owns: `write(tx, *args)`, named and with its data,
    so what a message will do can be read (and tested) before it is done."""

    write: Callable[..., Awaitable[object]]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    async def apply(self, tx: Tx) -> None:
        await self.write(tx, *self.args, **self.kwargs)


@dataclass(frozen=True)
class Effects:
    """What a handler decided for one message: steps applied in order, in one
    transaction together with the message's "done" mark."""

    steps: tuple[Step, ...] = field(default=())

    @classmethod
    def of(cls, *steps: Step) -> Effects:
        return cls(steps)

    @classmethod
    def call(cls, write: Callable[..., Awaitable[object]], *args: Any,
             **kwargs: Any) -> Effects:
        """One write by the handler's service: `await write(tx, *args, **kwargs)`."""
        return cls((Call(write, args, kwargs),))

    @classmethod
    def audit_only(cls, msg: Inbound, action: str,
                   detail: Mapping[str, object] | None = None) -> Effects:
        """A message that changes nothing but the audit log (loops, ignored mail)."""
        return cls((Audit(action, f"inbound:{msg.id}", detail or {}),))

    async def apply(self, tx: Tx) -> None:
        for step in self.steps:
            await step.apply(tx)


class Handler(Protocol):
    """Handles one list address.

    `batchable`: the handler's messages are decided each on its own (no message's
    decision reads another's effects), so the worker commits consecutive such messages
    together. `cycle()` is entered around each such run (to share reads within it).
    `decide(msg)` does the slow work and returns the effects; it writes nothing."""

    batchable: bool

    def cycle(self) -> AbstractContextManager[None]: ...

    async def decide(self, msg: Inbound) -> Effects: ...


class OneByOne:
    """Defaults for a handler whose messages are committed one at a time."""

    batchable: bool = False

    def cycle(self) -> AbstractContextManager[None]:
        return nullcontext()


class LeaseLost(Exception):
    """Another worker took the message over; our effects are rolled back."""


class Unrouted(OneByOne):
    """Mail of a list and role that has no handler (a reload dropped it): quarantined."""

    async def decide(self, msg: Inbound) -> Effects:
        raise LookupError(f"no handler for {msg.list_name}/{msg.role.value}")


@dataclass(frozen=True)
class Wakeups:
    """Who hears of a commit besides the outbox: `every` on any, `by_list[name]` when
    mail of that list was committed (a wake-up costly enough to skip otherwise).
    Each only wakes work that reads the database afresh; none is told what changed."""

    every: tuple[Callable[[], None], ...] = ()
    by_list: Mapping[str, Callable[[], None]] = field(default_factory=dict)


class Worker:
    def __init__(self, *, store: Store, handlers: Mapping[tuple[str, RecipientRole], Handler],
                 owner: str, lease_seconds: int, batch: int, poll_interval: float,
                 waker: Waker, outbox: Waker, wakeups: Wakeups | None = None,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.store = store
        self.handlers = handlers
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self.poll_interval = poll_interval
        self.waker = waker
        self.outbox = outbox
        self.wakeups = wakeups or Wakeups()

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
        for batchable, run in groupby(claimed, key=lambda m: self._route(m).batchable):
            if batchable:
                # Independent messages share one commit and the handlers' cycle()
                # around them: nothing else commits in between.
                await self.process(list(run), shared=True)
            else:
                for msg in run:
                    await self.process([msg])
        return len(claimed)

    async def process(self, msgs: list[Inbound], *, shared: bool = False) -> None:
        """The story of claimed messages, top to bottom: route each to its handler, let
        it decide (no writes), commit every message's effects with its "done" mark,
        then wake the outbox. `shared`: a run of batchable messages in one cycle."""
        decided: list[tuple[Inbound, Effects]] = []
        with self._cycle() if shared else nullcontext():
            for msg in msgs:
                try:
                    decided.append((msg, await self._route(msg).decide(msg)))
                except Exception as exc:  # quarantined with its error, never dropped
                    await self._fail(msg, exc)
            pending = decided
            while pending:  # one transaction per prefix: see _commit_some
                pending = pending[await self._commit_some(pending):]
        # Only a commit wakes the outbox (and reminders): an empty pass would be wasted work.
        if decided:
            self._wake(frozenset(msg.list_name for msg, _ in decided))

    def _route(self, msg: Inbound) -> Handler:
        return self.handlers.get((msg.list_name, msg.role)) or Unrouted()

    def _cycle(self) -> ExitStack:
        stack = ExitStack()
        for handler in {id(h): h for h in self.handlers.values()}.values():
            stack.enter_context(handler.cycle())
        return stack

    def _wake(self, lists: frozenset[str]) -> None:
        self.outbox.wake()
        for wake in self.wakeups.every:
            wake()
        for name in lists & self.wakeups.by_list.keys():
            self.wakeups.by_list[name]()

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
                            await effects.apply(tx)
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
