"""The worker's shared commits on SQLite: an arrival never waits for a whole batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from listbot.app import App, make_transport
from listbot.core.clock import FakeClock
from listbot.core.handlers import RecordOnly
from listbot.core.model import Inbound, InboundState, OutboxState, RecipientRole, Route
from listbot.core.outbox.delivery import Delivery
from listbot.core.routing import Router
from listbot.core.store import Arrival, Store, Tx
from listbot.core.waker import Waker
from listbot.core.worker import Audit, Effects, Handler, OneByOne, Wakeups, Worker
from listbot.settings import Settings
from tests.daemon import post
from tests.sink import Sink

DISCUSS = "discuss@lists.example.org"

ROUTE = Route("discuss", RecipientRole.POST, None)


def arrival(n: int) -> Arrival:
    return Arrival("lmtp", "a@x.example", "discuss@lists.example.org", ROUTE,
                   f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())


class Recording(OneByOne):
    """A batchable handler whose first message's effects let a sender's arrival in."""

    batchable = True

    def __init__(self, store: Store, events: list[str]) -> None:
        self.store, self.events = store, events
        self.arrival: asyncio.Task[list[int]] | None = None

    async def decide(self, msg: Inbound) -> Effects:
        return Effects.call(self.effects, msg)

    async def effects(self, tx: Tx, msg: Inbound) -> None:
        if self.arrival is None:
            self.arrival = asyncio.create_task(self._arrive())
            await asyncio.sleep(0)  # the arrival queues for the writer
        self.events.append(f"effects {msg.id}")

    async def _arrive(self) -> list[int]:
        ids = await self.store.store_arrivals([arrival(99)])
        self.events.append("arrival committed")
        return ids


async def test_a_batch_yields_the_writer_to_a_waiting_arrival(tmp_path: Path,
                                                              clock: FakeClock) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", clock)
    await store.upgrade()
    try:
        await store.store_arrivals([arrival(i) for i in range(20)])
        events: list[str] = []
        handler = Recording(store, events)
        worker = Worker(store=store, handlers={("discuss", RecipientRole.POST): handler},
                        owner="w1", lease_seconds=60, batch=20, poll_interval=1.0,
                        waker=Waker(), outbox=Waker())
        assert await worker.run_once() == 20
        assert handler.arrival is not None
        await handler.arrival
        # The arrival committed after the first message, not after all twenty...
        assert events.index("arrival committed") < events.index("effects 20")
        # ...and every message of the batch was still finished exactly once.
        assert [e for e in events if e.startswith("effects")] == [
            f"effects {i}" for i in range(1, 21)]
        done = await store.inbound_listing([InboundState.DONE])
        assert len(done) == 20
        assert len(await store.inbound_listing([InboundState.NEW])) == 1  # the arrival
    finally:
        await store.close()


class Single(OneByOne):
    """A handler whose messages are committed one at a time (not batchable)."""

    async def decide(self, msg: Inbound) -> Effects:
        return Effects.of(Audit("handled", f"inbound:{msg.id}", {}, actor="test"))


class Counting(Waker):
    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1
        super().wake()


class Batchable(Single):
    batchable = True


async def test_only_a_commit_wakes_delivery(tmp_path: Path, clock: FakeClock) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", clock)
    await store.upgrade()
    commits: list[str] = []
    try:
        for handler in (Batchable(), Single()):
            outbox = Counting()
            worker = Worker(store=store, handlers={("discuss", RecipientRole.POST): handler},
                            owner="w1", lease_seconds=60, batch=20, poll_interval=1.0,
                            waker=Waker(), outbox=outbox, wakeups=Wakeups(by_list={
                                "discuss": lambda: commits.append("discuss"),
                                "security": lambda: commits.append("security")}))
            assert await worker.run_once() == 0
            assert commits == [], "an empty poll committed nothing: delivery stays asleep"
            assert outbox.wakes == 0
            await store.store_arrivals([arrival(1)])
            assert await worker.run_once() == 1
            assert commits == ["discuss"], "one commit, one wake-up, with its list"
            assert outbox.wakes == 1
            commits.clear()
    finally:
        await store.close()


class Cycled(Batchable):
    """Records which messages it handled inside its cycle() (a shared roster read)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.open = False

    @contextmanager
    def cycle(self) -> Iterator[None]:
        self.events.append("cycle")
        self.open = True
        try:
            yield
        finally:
            self.open = False

    async def decide(self, msg: Inbound) -> Effects:
        self.events.append(f"post {msg.id}")
        return await super().decide(msg)


class Outside(Single):
    """A message that may change what the cycle shared (an accepted application)."""

    def __init__(self, cycled: Cycled) -> None:
        self.cycled = cycled

    async def decide(self, msg: Inbound) -> Effects:
        assert not self.cycled.open, "handled while a shared read was still in use"
        self.cycled.events.append(f"other {msg.id}")
        return await super().decide(msg)


async def test_a_cycle_spans_one_run_of_batchable_messages_never_another_commit(
        tmp_path: Path, clock: FakeClock) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", clock)
    await store.upgrade()
    other = Route("applications", RecipientRole.POST, None)
    try:
        await store.store_arrivals([
            arrival(1), arrival(2),
            Arrival("lmtp", "a@x.example", "apply@lists.example.org", other, b"S: 3\r\n\r\n"),
            arrival(4)])
        events: list[str] = []
        cycled = Cycled(events)
        worker = Worker(store=store, handlers={("discuss", RecipientRole.POST): cycled,
                                               ("applications", RecipientRole.POST):
                                               Outside(cycled)},
                        owner="w1", lease_seconds=60, batch=20, poll_interval=1.0,
                        waker=Waker(), outbox=Waker())
        assert await worker.run_once() == 4
        assert events == ["cycle", "post 1", "post 2", "other 3", "cycle", "post 4"]
        assert not cycled.open
        assert len(await store.inbound_listing([InboundState.DONE])) == 4
    finally:
        await store.close()


class RemovesAfterFirst:
    """Discuss, with a member removed once the run's roster snapshot is taken."""

    batchable = True

    def __init__(self, inner: Handler, store: Store, leaving: str) -> None:
        self.inner, self.store, self.leaving = inner, store, leaving
        self.removed = False

    def cycle(self) -> AbstractContextManager[None]:
        return self.inner.cycle()

    async def decide(self, msg: Inbound) -> Effects:
        effects = await self.inner.decide(msg)
        if not self.removed:
            async with self.store.unit() as tx:
                await tx.remove_member(self.leaving, "left during the run")
            self.removed = True
        return effects


async def test_a_member_removed_during_a_run_gets_none_of_its_posts(
        make_config: Callable[..., Settings], sink: Sink, clock: FakeClock) -> None:
    # The run's snapshot still lists the member: the rows are queued, and the gate, on
    # its own fresh read, refuses every one of them with an alert
    # (docs/design.md "The audience gate").
    stays, leaves = "security@vendor-a.example", "psirt@vendor-b.example"
    cfg = make_config(sink=sink)
    app = App.create(cfg, clock=clock)
    await app.store.upgrade()
    try:
        async with app.store.unit() as tx:
            await tx.add_member("Vendor A", stays, None)
            await tx.add_member("Vendor B", leaves, None)
        route = Router(cfg.core.lists.values()).route(DISCUSS)
        assert route is not None
        await app.store.store_arrivals([
            Arrival("lmtp", stays, DISCUSS, route, post(stays, subject=f"Re: [XSA-465] {n}"))
            for n in (1, 2)])
        discuss = app.prepare(cfg).handlers[("discuss", RecipientRole.POST)]
        worker = Worker(store=app.store, handlers={
            ("discuss", RecipientRole.POST): RemovesAfterFirst(discuss, app.store, leaves)},
            owner="w1", lease_seconds=60, batch=20, poll_interval=1.0, waker=Waker(),
            outbox=Waker())
        assert await worker.run_once() == 2
        delivery = Delivery(store=app.store, transport=make_transport(cfg.core), cfg=cfg.core,
                            clock=clock, owner="w1", facts=app.gate.read, waker=Waker())
        await delivery.run_once()
        await sink.wait_deliveries(2)
        assert sink.recipients() == [stays, stays]
        refused = await app.store.outbox_listing([OutboxState.REFUSED])
        assert sorted(i.recipient for i in refused) == [leaves, leaves]
        assert len(await app.store.audit_listing(action_prefix="alert.gate-refused")) == 2
    finally:
        await app.store.close()


async def test_a_decision_is_data_the_worker_applies_not_a_write() -> None:
    # Subscription requests: one audit row and nothing else, readable before the commit.
    msg = Inbound(7, "lmtp", "a@x.example", "discuss-request@lists.example.org", "discuss",
                  RecipientRole.REQUEST, None, b"Subject: subscribe\r\n\r\n",
                  datetime(2026, 11, 25, tzinfo=UTC), 1)
    effects = await RecordOnly("subscription_request_ignored").decide(msg)
    assert effects == Effects.audit_only(msg, "subscription_request_ignored", {
        "list": "discuss", "recipient": "discuss-request@lists.example.org"})
    assert effects.steps == (Audit("subscription_request_ignored", "inbound:7", {
        "list": "discuss", "recipient": "discuss-request@lists.example.org"}),)


async def test_mail_without_a_handler_is_quarantined_not_dropped(tmp_path: Path,
                                                                 clock: FakeClock) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", clock)
    await store.upgrade()
    try:
        await store.store_arrivals([arrival(1)])
        outbox = Counting()
        worker = Worker(store=store, handlers={}, owner="w1", lease_seconds=60, batch=20,
                        poll_interval=1.0, waker=Waker(), outbox=outbox)
        assert await worker.run_once() == 1
        assert outbox.wakes == 0, "nothing committed"
        assert len(await store.inbound_listing([InboundState.QUARANTINED])) == 1
    finally:
        await store.close()
