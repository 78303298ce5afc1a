"""The worker's shared commits on SQLite: an arrival never waits for a whole batch."""

from __future__ import annotations

import asyncio
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
                        waker=Waker(), on_committed=lambda: None)
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
                            waker=Waker(), on_committed=lambda: commits.append("wake"))
            assert await worker.run_once() == 0
            assert commits == [], "an empty poll committed nothing: delivery stays asleep"
            await store.store_arrivals([arrival(1)])
            assert await worker.run_once() == 1
            assert commits == ["wake"], "one commit, one wake-up"
            commits.clear()
    finally:
        await store.close()
