"""Held posts in the store: the reminder and expiry queries of one moderated list."""

from __future__ import annotations

from datetime import timedelta

from listbot.core.clock import FakeClock
from listbot.core.store import Store
from listbot.core.store import moderation as held_ops


async def test_due_held_posts_are_found_per_list(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    async with store.unit() as tx:
        for post_id, name in ((1, "discuss"), (2, "other")):
            await held_ops.insert_held(
                tx, post_id=post_id, list_name=name, sender="a@x.example",
                subject="s", message_id=None, raw=b"Subject: s\r\n\r\nx\r\n", rule="default",
                reason="r", hits=(), now=now, expires_at=now + timedelta(hours=post_id))
    later = now + timedelta(hours=3)
    async with store.read() as tx:
        assert [p.id for p in await held_ops.due_reminders(
            tx, "other", now, timedelta(days=1))] == [2]
        assert [p.id for p in await held_ops.due_expiries(tx, "discuss", later)] == [1]
        assert await held_ops.next_due(tx, "other", timedelta(0)) == now + timedelta(
            hours=2)
