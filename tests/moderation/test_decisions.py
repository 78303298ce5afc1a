"""The decision-token service on SQLite and PostgreSQL: digests only, single use,
expiry, first decision wins under real concurrency."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from listbot.core.clock import FakeClock
from listbot.core.store import Store
from listbot.core.store.schema_moderation import decision_tokens
from listbot.moderation import decisions
from listbot.moderation.decisions import AlreadyDecided, Decided, Ignore, Reply, token_digest


async def _store(db_url: str, clock: FakeClock) -> Store:
    store = Store.open(db_url, clock)
    await store.upgrade()
    return store


def _reply(token_id: int, decider: str, verb: str = "approve") -> Reply:
    return Reply(token_id, "thing", "7", "discuss", decider, verb, "", None)


async def test_tokens_are_stored_as_digests_and_spent_once(db_url: str,
                                                           clock: FakeClock) -> None:
    store = await _store(db_url, clock)
    try:
        async with store.unit() as tx:
            issued = await decisions.issue(tx, kind="thing", item_id="7", list_name="discuss",
                                           issued_to="a@x.example",
                                           expires_at=clock.now() + timedelta(days=7))
        assert len(issued.token) == 26 and len(set(issued.token)) > 8
        async with store.unit() as tx:
            stored = [r.digest for r in await tx.conn.execute(select(decision_tokens))]
            assert stored == [token_digest(issued.token)]
            assert issued.token not in stored
            record = await decisions.lookup(tx, issued.token.upper(),  # case-folded by MTAs
                                            kind="thing", list_name="discuss")
            assert record is not None and record.item_id == "7"
            mutated = issued.token[:-2] + ("a" if issued.token[-2] != "a" else "b")
            assert await decisions.lookup(tx, mutated + issued.token[-1], kind="thing",
                                          list_name="discuss") is None
            # The same token is no token for another list or another kind of item.
            assert await decisions.lookup(tx, issued.token, kind="thing",
                                          list_name="other") is None
            assert await decisions.lookup(tx, issued.token, kind="application",
                                          list_name="discuss") is None
        async with store.unit() as tx:
            first = await decisions.apply(tx, _reply(issued.token_id, "a@x.example"))
        async with store.unit() as tx:
            again = await decisions.apply(tx, _reply(issued.token_id, "a@x.example",
                                                     "discard"))
        assert isinstance(first, Decided)
        assert isinstance(again, AlreadyDecided) and again.by == "a@x.example"
        assert "already decided by a@x.example at 2026-11-25 09:00 UTC" in again.text()
    finally:
        await store.close()


async def test_expired_token_is_not_spent(db_url: str, clock: FakeClock) -> None:
    store = await _store(db_url, clock)
    try:
        async with store.unit() as tx:
            issued = await decisions.issue(tx, kind="thing", item_id="7", list_name="discuss",
                                           issued_to=None,
                                           expires_at=clock.now() + timedelta(hours=1))
        clock.advance(timedelta(hours=1))
        async with store.unit() as tx:
            result = await decisions.apply(tx, _reply(issued.token_id, "a@x.example"))
        assert isinstance(result, Ignore) and "expired" in result.reason
    finally:
        await store.close()


async def test_concurrent_decisions_one_winner(db_url: str, clock: FakeClock) -> None:
    store = await _store(db_url, clock)
    try:
        async with store.unit() as tx:
            tokens = [await decisions.issue(tx, kind="thing", item_id="7", list_name="discuss",
                                            issued_to=None,
                                            expires_at=clock.now() + timedelta(days=1))
                      for _ in range(6)]

        async def one(i: int) -> object:
            async with store.unit() as tx:
                return await decisions.apply(tx, _reply(tokens[i].token_id, f"m{i}@x.example"))

        results = await asyncio.gather(*(one(i) for i in range(6)), return_exceptions=True)
        winners = [r for r in results if isinstance(r, Decided)]
        assert len(winners) == 1, results
        others = [r for r in results if not isinstance(r, Decided)]
        # The losers are told who won (or, on SQLite, may have to retry the locked write).
        assert all(isinstance(r, AlreadyDecided | Exception) for r in others)
        async with store.unit() as tx:
            item = await decisions.item_state(tx, "thing", "7")
        assert item is not None and item.decided_by == winners[0].decider
    finally:
        await store.close()


async def test_a_token_issued_before_tokens_were_shortened_still_decides(
        db_url: str, clock: FakeClock) -> None:
    # Requests sent before the upgrade carry 39-character (192-bit) tokens; the store
    # keeps digests, so the old and the new form are found the same way.
    old = "a" * 13 + "b" * 13 + "c" * 13
    store = await _store(db_url, clock)
    try:
        async with store.unit() as tx:
            await decisions.issue(tx, kind="thing", item_id="7", list_name="discuss",
                                  issued_to=None, expires_at=clock.now() + timedelta(days=1),
                                  token=old)
            fresh = await decisions.issue(tx, kind="thing", item_id="8", list_name="discuss",
                                          issued_to=None,
                                          expires_at=clock.now() + timedelta(days=1))
        async with store.read() as tx:
            found_old = await decisions.lookup(tx, old, kind="thing", list_name="discuss")
            found_new = await decisions.lookup(tx, fresh.token, kind="thing",
                                               list_name="discuss")
        assert found_old is not None and found_old.item_id == "7"
        assert found_new is not None and found_new.item_id == "8"
        assert len(fresh.token) == 26
    finally:
        await store.close()
