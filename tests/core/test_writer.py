"""SQLite's one-writer queue: arrivals first, background work never starved, cancels safe."""

from __future__ import annotations

import asyncio

from listbot.core.store.writer import WriterQueue


async def _turns(queue: WriterQueue, plan: list[tuple[str, bool]]) -> list[str]:
    """Holds the writer, queues `plan` behind it, releases, and returns the order served."""
    served: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with queue.hold(urgent=False):
            await release.wait()

    async def one(name: str, urgent: bool) -> None:
        async with queue.hold(urgent=urgent):
            served.append(name)
            await asyncio.sleep(0)  # hold across a switch, as a real transaction does

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    tasks = []
    for name, urgent in plan:
        tasks.append(asyncio.create_task(one(name, urgent)))
        await asyncio.sleep(0)  # queued in plan order
    release.set()
    await asyncio.gather(holder, *tasks)
    return served


async def test_arrivals_go_before_queued_background_work() -> None:
    order = await _turns(WriterQueue(), [("worker", False), ("arrival-1", True),
                                         ("delivery", False), ("arrival-2", True)])
    assert order == ["arrival-1", "arrival-2", "worker", "delivery"]


async def test_background_work_gets_a_turn_under_a_flood_of_arrivals() -> None:
    plan = [("worker", False)] + [(f"arrival-{i}", True) for i in range(10)]
    order = await _turns(WriterQueue(fair_every=4), plan)
    assert order.index("worker") == 4  # after four arrivals, not after all ten
    assert sorted(order) == sorted(n for n, _ in plan)


async def test_one_writer_at_a_time() -> None:
    queue = WriterQueue()
    inside = 0
    most = 0

    async def one(urgent: bool) -> None:
        nonlocal inside, most
        async with queue.hold(urgent=urgent):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(one(i % 2 == 0) for i in range(50)))
    assert most == 1


async def test_a_cancelled_waiter_neither_blocks_nor_takes_a_turn() -> None:
    queue = WriterQueue()
    served: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with queue.hold(urgent=False):
            await release.wait()

    async def one(name: str) -> None:
        async with queue.hold(urgent=True):
            served.append(name)

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone, kept = asyncio.create_task(one("gone")), asyncio.create_task(one("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(h, kept), 5)
    assert served == ["kept"]
    async with queue.hold(urgent=False):  # and the writer is free again
        pass


async def test_a_waiter_cancelled_after_its_turn_came_passes_it_on() -> None:
    queue = WriterQueue()
    served: list[str] = []

    async def one(name: str) -> None:
        async with queue.hold(urgent=True):
            served.append(name)

    async with queue.hold(urgent=False):
        late = asyncio.create_task(one("late"))
        nxt = asyncio.create_task(one("next"))
        await asyncio.sleep(0)
    late.cancel()  # the turn was handed to it, but it has not run yet
    await asyncio.wait_for(asyncio.gather(nxt, return_exceptions=True), 5)
    assert late.cancelled() and served == ["next"]
    async with queue.hold(urgent=False):
        pass
