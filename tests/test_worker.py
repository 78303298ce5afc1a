"""The worker's shared commits on SQLite: an arrival never waits for a whole batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from listbot.clock import FakeClock
from listbot.model import Inbound, InboundState, RecipientRole, Route
from listbot.store import Arrival, Store, Tx
from listbot.waker import Waker
from listbot.worker import Effects, Worker

ROUTE = Route("discuss", RecipientRole.POST, None)


def arrival(n: int) -> Arrival:
    return Arrival("lmtp", "a@x.example", "discuss@lists.example.org", ROUTE,
                   f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())


class Recording:
    """A batchable handler whose first message's effects let a sender's arrival in."""

    batchable = True

    def __init__(self, store: Store, events: list[str]) -> None:
        self.store, self.events = store, events
        self.arrival: asyncio.Task[list[int]] | None = None

    async def handle(self, msg: Inbound) -> Effects:
        async def effects(tx: Tx) -> None:
            if self.arrival is None:
                self.arrival = asyncio.create_task(self._arrive())
                await asyncio.sleep(0)  # the arrival queues for the writer
            self.events.append(f"effects {msg.id}")
        return effects

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
                        waker=Waker(), on_committed=lambda lists: None)
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


class Single:
    """A handler whose messages are committed one at a time (not batchable)."""

    async def handle(self, msg: Inbound) -> Effects:
        async def effects(tx: Tx) -> None:
            await tx.audit("test", "handled", f"inbound:{msg.id}")
        return effects


class Batchable(Single):
    batchable = True


async def test_only_a_commit_wakes_delivery(tmp_path: Path, clock: FakeClock) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", clock)
    await store.upgrade()
    commits: list[str] = []
    try:
        for handler in (Batchable(), Single()):
            worker = Worker(store=store, handlers={("discuss", RecipientRole.POST): handler},
                            owner="w1", lease_seconds=60, batch=20, poll_interval=1.0,
                            waker=Waker(), on_committed=commits.extend)
            assert await worker.run_once() == 0
            assert commits == [], "an empty poll committed nothing: delivery stays asleep"
            await store.store_arrivals([arrival(1)])
            assert await worker.run_once() == 1
            assert commits == ["discuss"], "one commit, one wake-up, with its list"
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

    async def handle(self, msg: Inbound) -> Effects:
        self.events.append(f"post {msg.id}")
        return await super().handle(msg)


class Outside(Single):
    """A message that may change what the cycle shared (an accepted application)."""

    def __init__(self, cycled: Cycled) -> None:
        self.cycled = cycled

    async def handle(self, msg: Inbound) -> Effects:
        assert not self.cycled.open, "handled while a shared read was still in use"
        self.cycled.events.append(f"other {msg.id}")
        return await super().handle(msg)


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
                        waker=Waker(), on_committed=lambda lists: None)
        assert await worker.run_once() == 4
        assert events == ["cycle", "post 1", "post 2", "other 3", "cycle", "post 4"]
        assert not cycled.open
        assert len(await store.inbound_listing([InboundState.DONE])) == 4
    finally:
        await store.close()
