"""The delivery worker: the only code that sends mail, and only from the outbox.

Each claimed row passes the audience gate just before it is handed to the relay;
identical bytes for several recipients share one SMTP transaction. A relay that is down
as a whole holds the queue with one backoff (listbot.core.outbox.relay).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from listbot.core.clock import Clock
from listbot.core.config import Config
from listbot.core.metrics import Metrics
from listbot.core.model import OutboxItem, OutboxState
from listbot.core.outbox import gate
from listbot.core.outbox.alerts import raise_alert
from listbot.core.outbox.recorder import GroupCommit
from listbot.core.outbox.relay import RelayState, backoff
from listbot.core.outbox.transport import SendResult, Transport
from listbot.core.store import Store
from listbot.core.waker import Waker

log = structlog.get_logger("listbot.delivery")

FactsLoader = Callable[[], Awaitable[gate.GateFacts]]


@dataclass(frozen=True)
class Outcome:
    state: OutboxState
    next_attempt_at: datetime | None


__all__ = ["Delivery", "Outcome", "backoff", "chunks", "outcome"]
# A row of a batch the relay went down in before its turn: tried again with the relay.
NOT_TRIED = SendResult(451, "4.4.1 not tried: the relay is down", relay=True)


def outcome(item: OutboxItem, result: SendResult, now: datetime, cfg: Config,
            relay_retry_at: datetime | None = None) -> Outcome:
    """`relay_retry_at`: when a refusal of the whole relay is tried again; the row's own
    backoff is for answers about the row."""
    if result.ok:
        return Outcome(OutboxState.SENT, None)
    d = cfg.delivery
    expired = now - item.created_at >= timedelta(seconds=d.retry_period_seconds)
    if result.permanent or expired:
        return Outcome(OutboxState.FAILED, None)
    if result.relay:
        return Outcome(OutboxState.PENDING, relay_retry_at or now)
    return Outcome(OutboxState.PENDING,
                   now + backoff(item.attempts, d.backoff_initial_seconds, d.backoff_max_seconds))


def chunks(items: Sequence[OutboxItem], size: int) -> list[list[OutboxItem]]:
    """Group rows that share bytes and envelope sender, at most `size` recipients each."""
    groups: dict[tuple[int, str], list[OutboxItem]] = defaultdict(list)
    for item in items:
        groups[(item.body_id, item.envelope_from)].append(item)
    out: list[list[OutboxItem]] = []
    for group in groups.values():
        out.extend(group[i:i + size] for i in range(0, len(group), size))
    return out


class Delivery:
    def __init__(self, *, store: Store, transport: Transport, cfg: Config, clock: Clock,
                 owner: str, facts: FactsLoader, waker: Waker, batch: int = 500,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.store = store
        self.transport = transport
        self.cfg = cfg
        self.clock = clock
        self.owner = owner
        self.facts = facts
        self.waker = waker
        self.batch = batch
        self.lease = timedelta(seconds=cfg.lease_seconds)
        self.relay = RelayState(cfg.delivery.backoff_initial_seconds,
                                cfg.delivery.backoff_max_seconds)
        self.outcomes: GroupCommit[tuple[OutboxItem, SendResult]] = GroupCommit(self._commit)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                sent = await self.run_once()
            except Exception as exc:  # keep delivering: the database may come back
                log.error("delivery.cycle_failed", error=type(exc).__name__, detail=str(exc))
                sent = 0
            if sent == 0:
                await self.waker.wait(await self._idle_timeout(), stopping)

    async def _idle_timeout(self) -> float:
        poll = self.cfg.poll_interval_seconds
        if self.relay.retry_at is not None:  # nothing goes before the relay's probe
            return max(0.0, min(poll, (self.relay.retry_at - self.clock.now()).total_seconds()))
        try:
            due = await self.store.next_outbox_due()
        except Exception:
            return poll
        if due is None:
            return poll
        return max(0.0, min(poll, (due - self.clock.now()).total_seconds()))

    async def run_once(self) -> int:
        if self.relay.waiting(self.clock.now()):
            return 0
        # While the relay is down one row probes it; the rest follow once it answers.
        probe = self.relay.down
        items, raws = await self.store.claim_outbox(self.owner, self.lease,
                                                    1 if probe else self.batch)
        if not items:
            return 0
        # The gate runs once, after the claim and on facts loaded now, and nothing but the
        # sends follows it. Once is enough: the clock only moves on and a release is never
        # undone, so a copy allowed here stays allowed until its bytes leave.
        facts = await self.facts()
        allowed = await self._refuse_gated(items, facts)
        size = self.cfg.delivery.smtp.max_recipients_per_transaction
        await self._send_all(chunks(allowed, size), raws, probe)
        return len(items)

    async def _send_all(self, work: list[list[OutboxItem]], raws: dict[int, bytes],
                        probe: bool) -> None:
        """As many lanes as the transport has connections. Each looks at the relay
        before it starts a chunk: once the relay is found down, the rest of the batch
        is not tried but waits for the relay's probe."""
        queue = deque(work)

        async def lane() -> None:
            while queue:
                chunk = queue.popleft()
                if self.relay.down and not probe:
                    await self._settle([(i, NOT_TRIED) for i in chunk])
                else:
                    await self._send_chunk(chunk, raws[chunk[0].body_id], probe)

        lanes = min(len(queue), self.cfg.delivery.smtp.pool_size)
        await asyncio.gather(*(lane() for _ in range(lanes)))

    async def _refuse_gated(self, items: Sequence[OutboxItem],
                            facts: gate.GateFacts) -> list[OutboxItem]:
        now = self.clock.now()
        refused = [(i, r) for i in items if (r := gate.refusal(i, facts, now)) is not None]
        if refused:
            async with self.store.unit() as tx:
                for item, reason in refused:
                    await tx.settle([item.id], self.owner, OutboxState.REFUSED, reason)
                    await raise_alert(tx, self.cfg, "gate-refused", reason, {
                        "outbox_id": item.id, "audience": item.audience.value,
                        "recipient": item.recipient, "list": item.list_name,
                        "case": item.case_id})
                    if self.metrics is not None:
                        self.metrics.delivered(item.list_name, "refused")
            self.waker.wake()
        refused_ids = {i.id for i, _ in refused}
        return [i for i in items if i.id not in refused_ids]

    async def _send_chunk(self, chunk: list[OutboxItem], raw: bytes, probe: bool) -> None:
        """Send one chunk, recording each transaction's outcome as soon as the relay gave
        it: a crash then repeats at most the transaction in flight, never those before."""
        by_rcpt = {i.recipient: i for i in chunk}
        recording: list[asyncio.Task[None]] = []

        async def answered(results: Mapping[str, SendResult]) -> None:
            rows = [(by_rcpt.pop(r), result) for r, result in results.items() if r in by_rcpt]
            if any(result.relay for result in results.values()):
                self.relay.refused(self.clock.now(), probe=probe)
            elif results:
                self.relay.answered()
            # Shielded: a timeout of the send must not cut a commit of answers already
            # given, which would leave them to be sent again.
            task = asyncio.ensure_future(self._settle(rows))
            recording.append(task)
            await asyncio.shield(task)

        # A send must end well inside our claim: past the lease another daemon may take
        # the rows over, and a hung relay would then mean the same mail twice.
        try:
            async with asyncio.timeout(self.lease.total_seconds() / 2):
                await self.transport.send(chunk[0].envelope_from, list(by_rcpt), raw,
                                          answered)
        except TimeoutError:
            pass
        except Exception as exc:  # one chunk must never sink the whole batch
            # Unsettled, its rows would be sent again only once the lease ends.
            log.error("delivery.send_failed", error=type(exc).__name__,
                      outbox_ids=[i.id for i in chunk])
        for failed in await asyncio.gather(*recording, return_exceptions=True):
            if isinstance(failed, BaseException):  # left claimed: retried after the lease
                log.error("delivery.record_failed", error=type(failed).__name__)
        missing = SendResult(451, "no answer for recipient")
        await self._settle([(i, missing) for i in by_rcpt.values()])

    async def _settle(self, results: list[tuple[OutboxItem, SendResult]]) -> None:
        """Returns once these outcomes are committed (with any other lane's that came
        meanwhile: see outbox.recorder)."""
        await self.outcomes.record(results)

    async def _commit(self, results: list[tuple[OutboxItem, SendResult]]) -> None:
        now = self.clock.now()
        Key = tuple[OutboxState, datetime | None, SendResult]
        by_outcome: dict[Key, list[OutboxItem]] = defaultdict(list)
        for item, result in results:
            o = outcome(item, result, now, self.cfg, self.relay.retry_at)
            by_outcome[(o.state, o.next_attempt_at, result)].append(item)
            if self.metrics is not None:
                self.metrics.delivered(item.list_name, o.state.value)
        async with self.store.unit() as tx:
            for (state, next_at, result), items in by_outcome.items():
                await tx.settle([i.id for i in items], self.owner, state,
                                f"{result.code} {result.reply}", next_at)
        # One line per outcome, not per recipient: at list sizes the per-row lines were a
        # measurable share of the daemon's CPU (bench/RESULTS.md).
        for (state, _, result), items in by_outcome.items():
            log.info("delivery.result", outbox_ids=[i.id for i in items],
                     lists=sorted({i.list_name or "-" for i in items}), state=state.value,
                     code=result.code)
