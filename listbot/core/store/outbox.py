"""The outbox: every outgoing message is a row here before any byte is sent."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update

from listbot.core.model import Audience, OutboxItem, OutboxState, OutgoingMessage
from listbot.core.store.claims import claim_rows
from listbot.core.store.schema import bodies, outbox
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_ignoring


async def enqueue(tx: Unit, msg: OutgoingMessage, now: datetime) -> list[int]:
    if not msg.recipients:
        return []
    body_id = await tx.conn.scalar(
        insert(bodies).values(raw=msg.raw, created_at=now).returning(bodies.c.id)
    )
    rows = [
        {
            "body_id": body_id,
            "audience": msg.audience.value,
            "envelope_from": msg.envelope_from,
            "recipient": rcpt,
            "list_name": msg.list_name,
            "case_id": msg.case_id,
            "not_before": msg.not_before,
            "dedupe_key": msg.dedupe_key,
            "message_id": msg.message_id,
            "reason": msg.reason,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": msg.not_before if msg.not_before and msg.not_before > now else now,
        }
        for rcpt in dict.fromkeys(msg.recipients)
    ]
    stmt = (insert_ignoring(tx, outbox, ("dedupe_key", "recipient")) if msg.dedupe_key
            else insert(outbox))
    result = await tx.conn.execute(stmt.returning(outbox.c.id), rows)
    return [r.id for r in result]


def to_item(r: Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=r.id,
        body_id=r.body_id,
        audience=Audience(r.audience),
        envelope_from=r.envelope_from,
        recipient=r.recipient,
        list_name=r.list_name,
        case_id=r.case_id,
        not_before=r.not_before,
        state=OutboxState(r.state),
        attempts=r.attempts,
        created_at=r.created_at,
        next_attempt_at=r.next_attempt_at,
        last_reply=r.last_reply,
        message_id=r.message_id,
        dedupe_key=r.dedupe_key,
    )


async def claim(
    tx: Unit, owner: str, now: datetime, lease: timedelta, limit: int
) -> tuple[list[OutboxItem], dict[int, bytes]]:
    claimable = or_(
        and_(outbox.c.state == OutboxState.PENDING.value, outbox.c.next_attempt_at <= now),
        and_(outbox.c.state == OutboxState.SENDING.value, outbox.c.lease_until < now),
    )
    rows = await claim_rows(tx, outbox, claimable,
                            order=(outbox.c.next_attempt_at, outbox.c.id), limit=limit,
                            values={"state": OutboxState.SENDING.value,
                                    "claimed_by": owner, "lease_until": now + lease})
    items = sorted((to_item(r) for r in rows), key=lambda i: i.id)
    body_ids = {i.body_id for i in items}
    raws: dict[int, bytes] = {}
    if body_ids:
        for row in await tx.conn.execute(
            select(bodies.c.id, bodies.c.raw).where(bodies.c.id.in_(body_ids))
        ):
            raws[row.id] = bytes(row.raw)
    return items, raws


async def next_due(tx: Unit) -> datetime | None:
    value: datetime | None = await tx.conn.scalar(
        select(func.min(outbox.c.next_attempt_at)).where(
            outbox.c.state == OutboxState.PENDING.value
        )
    )
    return value


async def settle(
    tx: Unit,
    ids: Sequence[int],
    owner: str,
    state: OutboxState,
    *,
    reply: str | None,
    now: datetime,
    next_attempt_at: datetime | None = None,
) -> int:
    """Record the outcome of a send attempt while we still hold the claim."""
    if not ids:
        return 0
    values: dict[str, Any] = {"state": state.value, "last_reply": reply, "lease_until": None}
    if state is OutboxState.SENT:
        values["sent_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    result = await tx.conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids), outbox.c.claimed_by == owner,
               outbox.c.state == OutboxState.SENDING.value)
        .values(**values)
    )
    return int(result.rowcount)


async def hold(tx: Unit, ids: Sequence[int]) -> None:
    """Rows that must wait for a person (a member without a usable key)."""
    if ids:
        await tx.conn.execute(update(outbox).where(outbox.c.id.in_(ids))
                              .values(state=OutboxState.HELD.value))


async def release_held(tx: Unit, ids: Sequence[int], now: datetime) -> int:
    result = await tx.conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids), outbox.c.state == OutboxState.HELD.value)
        .values(state=OutboxState.PENDING.value, next_attempt_at=now)
    )
    return int(result.rowcount)


async def listing(tx: Unit, states: Sequence[OutboxState]) -> list[OutboxItem]:
    result = await tx.conn.execute(
        select(outbox).where(outbox.c.state.in_([s.value for s in states])).order_by(outbox.c.id)
    )
    return [to_item(r) for r in result]


async def notices_since(tx: Unit, recipients: Collection[str],
                        since: datetime) -> int:
    """How many replies listbot already queued to these spellings of one address: the
    rate limit's memory. Every automatic reply, whatever its audience class, goes with
    the null sender."""
    value = await tx.conn.scalar(
        select(func.count()).select_from(outbox).where(
            outbox.c.recipient.in_(sorted(recipients)),
            outbox.c.envelope_from == "",
            outbox.c.created_at >= since,
        )
    )
    return int(value or 0)


async def counts(tx: Unit) -> dict[str, int]:
    result = await tx.conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
    return {row[0]: row[1] for row in result}
