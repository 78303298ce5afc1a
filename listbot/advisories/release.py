"""Releases: the database is the truth, the timer only wakes `dispatch(now)`.

`dispatch` claims every due advisory with ONE conditional UPDATE (state
'scheduled' and embargo_at <= now) and, in the same transaction, writes one
outbox row per (version, recipient) with a deterministic Message-ID and a
dedupe key. Two daemons on one PostgreSQL: the second UPDATE matches nothing.
A crash before commit leaves the advisory scheduled; after commit the rows
are stored. Public rows carry not_before = the instant, which the delivery
gate checks again just before the relay
(docs/design.md "Releases: never early, not lost, once").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from listbot.advisories import fanout
from listbot.advisories.index import IndexWriter
from listbot.advisories.render import Renderer, doc_from_json
from listbot.core.clock import Clock
from listbot.core.model import Member
from listbot.core.outbox.alerts import raise_alert
from listbot.core.store import Store, Tx
from listbot.core.store import advisories as ops
from listbot.core.store.advisories import AdvisoryRow
from listbot.core.timer import Timer

log = structlog.get_logger("listbot.release")

TIMER_KEY = "advisory-release"


class Dispatcher:
    def __init__(self, *, renderer: Renderer, store: Store, index: IndexWriter) -> None:
        self.r = renderer
        self.store = store
        self.index = index

    async def dispatch(self, now: datetime,
                       committed: Callable[[], None] | None = None) -> list[int]:
        """Release everything due at `now`; returns the numbers this call released.

        `committed` runs right after the claim commits (wake the delivery worker
        before the slower index write)."""
        async with self.store.unit() as tx:
            claimed = await ops.claim_due(tx, now)
            if not claimed:
                return []
            members = await tx.members()
            for adv in claimed:
                await self._release(tx, adv, members, now)
        if committed is not None:
            committed()
        await self.index.write(self.store)
        return [a.number for a in claimed]

    async def _release(self, tx: Tx, adv: AdvisoryRow, members: list[Member],
                       now: datetime) -> None:
        prefix = self.r.adv.prefix
        subject = f"advisory:{prefix}-{adv.number}"
        v = await ops.get_version(tx, adv.number, adv.current_version)
        if v.rendered_embargo_at != adv.embargo_at:
            # Cannot happen through the service (both change in one transaction);
            # rolling back keeps the advisory scheduled and the team hears of it.
            raise RuntimeError(f"{subject}: stored text does not carry the embargo instant")
        doc = doc_from_json(v.doc, project=self.r.cfg.project_name, prefix=prefix,
                            number=adv.number, version=v.version, embargo_at=adv.embargo_at)
        # Rows staged ahead for exactly this (version, instant) go now; rows staged for
        # anything else are cancelled; members not staged (added since, or nothing was
        # staged) are built here, the slow way.
        key = fanout.public_key(prefix, adv.number, v.version, adv.embargo_at)
        await ops.cancel_staged(tx, fanout.key_prefix(prefix, adv.number), keep=key,
                                reason="cancelled: superseded by a new version or instant")
        staged = await ops.release_staged(tx, key, now)
        missing = [m for m in members if m.address not in staged]
        fan = await fanout.public_sealed(self.r, doc, v.public_raw, missing, adv.embargo_at,
                                         now=now)
        rows = len(staged) + await fanout.enqueue(tx, self.r, fan, subject)
        late = (now - adv.embargo_at).total_seconds()
        await tx.audit("listbot", "advisory.released", subject,
                       {"version": v.version, "rows": rows, "late_seconds": round(late, 3),
                        "embargo_at": adv.embargo_at.isoformat()})
        log.info("advisory.released", advisory=subject, version=v.version, rows=rows,
                 late_seconds=round(late, 3))
        if late > self.r.adv.late_alert_seconds:
            await raise_alert(tx, self.r.cfg, "advisory-released-late",
                              f"{subject} released {_duration(late)} after its embargo "
                              f"instant {adv.embargo_at:%Y-%m-%d %H:%M} UTC",
                              {"advisory": subject, "late_seconds": round(late)})

    async def next_due(self) -> datetime | None:
        async with self.store.unit() as tx:
            return await ops.next_due(tx)


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


class Releaser:
    """The daemon's loop: a pass at start-up (overdue embargoes go at once, with an
    alert saying how late), then a dispatch on every timer wake-up or poll."""

    def __init__(self, *, dispatcher: Dispatcher, clock: Clock, timer: Timer | None,
                 poll_seconds: float, on_released: Callable[[], None]) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.timer = timer
        self.poll = poll_seconds
        self.on_released = on_released
        self._wake = asyncio.Event()

    async def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> list[int]:
        released = await self.dispatcher.dispatch(self.clock.now(), self.on_released)
        if released:
            self.on_released()
        due = await self.dispatcher.next_due()
        if self.timer is not None:
            if due is None:
                self.timer.cancel(TIMER_KEY)
            else:
                self.timer.wake_at(TIMER_KEY, due, self.wake)
        return released

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # the database may come back; the rows stay scheduled
                log.error("release.cycle_failed", error=type(exc).__name__, detail=str(exc))
            stop = asyncio.ensure_future(stopping.wait())
            wake = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({stop, wake}, timeout=self.poll,
                               return_when=asyncio.FIRST_COMPLETED)
            for f in (stop, wake):
                f.cancel()
            self._wake.clear()
