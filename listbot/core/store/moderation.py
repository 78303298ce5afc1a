"""Held posts of moderated lists. Decisions themselves live in decision_items."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update

from listbot.core.errors import TemporaryError
from listbot.core.store.schema_moderation import held_posts
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_new

HELD = "held"


@dataclass(frozen=True)
class HeldPost:
    id: int
    list_name: str
    inbound_id: int
    sender: str
    subject: str
    message_id: str | None
    rule: str
    reason: str
    hits: tuple[str, ...]
    state: str  # held, approved, rejected, discarded
    held_at: datetime
    expires_at: datetime
    reminded_at: datetime | None
    expired_noted_at: datetime | None

    def summary(self, now: datetime) -> dict[str, Any]:
        expired = self.state == HELD and self.expires_at <= now
        return {"id": self.id, "list": self.list_name, "sender": self.sender,
                "subject": self.subject, "rule": self.rule, "reason": self.reason,
                "hits": ", ".join(self.hits), "state": "expired" if expired else self.state,
                "held_at": self.held_at, "expires_at": self.expires_at}


def _post(row: Any) -> HeldPost:
    return HeldPost(id=row.id, list_name=row.list_name, inbound_id=row.inbound_id,
                    sender=row.sender, subject=row.subject, message_id=row.message_id,
                    rule=row.rule, reason=row.reason, hits=tuple(json.loads(row.hits)),
                    state=row.state, held_at=row.held_at, expires_at=row.expires_at,
                    reminded_at=row.reminded_at, expired_noted_at=row.expired_noted_at)


_COLUMNS = [c for c in held_posts.c if c.name != "raw"]


async def insert_held(tx: Unit, *, post_id: int, list_name: str, sender: str,
                      subject: str, message_id: str | None, raw: bytes, rule: str,
                      reason: str, hits: Sequence[str], now: datetime,
                      expires_at: datetime) -> int:
    """Hold the inbound message `post_id`. One another handler held first (its lease
    ran out meanwhile) is TemporaryError, and is that handler's to finish."""
    row = await insert_new(tx, held_posts, {
        "id": post_id, "list_name": list_name, "inbound_id": post_id, "sender": sender,
        "subject": subject, "message_id": message_id, "raw": raw, "rule": rule,
        "reason": reason, "hits": json.dumps(list(hits)), "state": HELD, "held_at": now,
        "expires_at": expires_at, "requests_sent": 0},
        keys=None, taken=TemporaryError(f"post {post_id} is held already"))
    return int(row.id)


async def get(tx: Unit, post_id: int) -> HeldPost | None:
    row = (await tx.conn.execute(select(*_COLUMNS).where(held_posts.c.id == post_id))).first()
    return None if row is None else _post(row)


async def get_raw(tx: Unit, post_id: int) -> bytes | None:
    row = (await tx.conn.execute(select(held_posts.c.raw)
                                 .where(held_posts.c.id == post_id))).first()
    return None if row is None else bytes(row.raw)


async def listing(tx: Unit, states: Sequence[str] | None) -> list[HeldPost]:
    query = select(*_COLUMNS).order_by(held_posts.c.id)
    if states:
        query = query.where(held_posts.c.state.in_(list(states)))
    return [_post(r) for r in await tx.conn.execute(query)]


async def settle(tx: Unit, post_id: int, state: str) -> bool:
    result = await tx.conn.execute(update(held_posts).where(and_(
        held_posts.c.id == post_id, held_posts.c.state == HELD)).values(state=state))
    return result.rowcount == 1


async def due_reminders(tx: Unit, list_name: str, now: datetime,
                        before: Any) -> list[HeldPost]:
    query = select(*_COLUMNS).where(and_(
        held_posts.c.list_name == list_name, held_posts.c.state == HELD,
        held_posts.c.reminded_at.is_(None),
        held_posts.c.expires_at > now, held_posts.c.expires_at <= now + before))
    return [_post(r) for r in await tx.conn.execute(query)]


async def due_expiries(tx: Unit, list_name: str,
                       now: datetime) -> list[HeldPost]:
    query = select(*_COLUMNS).where(and_(
        held_posts.c.list_name == list_name, held_posts.c.state == HELD,
        held_posts.c.expired_noted_at.is_(None),
        held_posts.c.expires_at <= now))
    return [_post(r) for r in await tx.conn.execute(query)]


async def mark(tx: Unit, post_id: int, column: str, now: datetime) -> bool:
    """Set reminded_at or expired_noted_at once (conditional: a second daemon gets False)."""
    col = held_posts.c[column]
    result = await tx.conn.execute(update(held_posts).where(and_(
        held_posts.c.id == post_id, col.is_(None))).values({column: now}))
    return result.rowcount == 1


async def next_due(tx: Unit, list_name: str, before: Any) -> datetime | None:
    """The next instant a reminder or an expiry note is due, for the wake-up timer."""
    rows = await tx.conn.execute(select(held_posts.c.expires_at, held_posts.c.reminded_at,
                                        held_posts.c.expired_noted_at).where(
        held_posts.c.list_name == list_name, held_posts.c.state == HELD,
        held_posts.c.expired_noted_at.is_(None)))
    times: list[datetime] = []
    for r in rows:
        times.append(r.expires_at if r.reminded_at is not None else r.expires_at - before)
    return min(times, default=None)
