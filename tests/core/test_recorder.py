"""Outcomes of concurrent lanes share commits, and each lane still waits for its own."""

from __future__ import annotations

import asyncio

import pytest

from listbot.core.outbox.recorder import GroupCommit


class Commits:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail = False

    async def commit(self, rows: list[int]) -> None:
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("disk full")
        self.batches.append(rows)


async def test_rows_that_arrive_during_a_commit_share_the_next_one() -> None:
    commits = Commits()
    group: GroupCommit[int] = GroupCommit(commits.commit)
    first = asyncio.ensure_future(group.record([1]))
    await asyncio.sleep(0)  # the first commit is now running and waits at the gate
    later = [asyncio.ensure_future(group.record([n])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not first.done() and not any(t.done() for t in later)
    commits.gate.set()
    await asyncio.gather(first, *later)
    assert commits.batches == [[1], [2, 3, 4]]


async def test_no_one_returns_before_the_commit_that_holds_its_rows() -> None:
    commits = Commits()
    group: GroupCommit[int] = GroupCommit(commits.commit)
    task = asyncio.ensure_future(group.record([7]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done() and commits.batches == []
    commits.gate.set()
    await task
    assert commits.batches == [[7]]


async def test_a_failed_commit_reaches_every_row_in_it_and_the_next_still_commits() -> None:
    commits = Commits()
    group: GroupCommit[int] = GroupCommit(commits.commit)
    commits.fail = True
    waiting = [asyncio.ensure_future(group.record([n])) for n in (1, 2)]
    commits.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    commits.fail = False
    await group.record([3])
    assert commits.batches == [[3]]


async def test_nothing_to_record_commits_nothing() -> None:
    commits = Commits()
    commits.gate.set()
    group: GroupCommit[int] = GroupCommit(commits.commit)
    await group.record([])
    assert commits.batches == []


@pytest.mark.parametrize("lanes", [1, 4])
async def test_every_row_is_committed_exactly_once(lanes: int) -> None:
    commits = Commits()
    commits.gate.set()
    group: GroupCommit[int] = GroupCommit(commits.commit)

    async def lane(start: int) -> None:
        for n in range(start, start + 50):
            await group.record([n])

    await asyncio.gather(*(lane(k * 100) for k in range(lanes)))
    committed = [n for batch in commits.batches for n in batch]
    expected = [n for k in range(lanes) for n in range(k * 100, k * 100 + 50)]
    assert sorted(committed) == expected
