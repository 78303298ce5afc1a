"""Inbound messages: stored before 250, claimed with a lease, finished once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update

from listbot.core.model import Inbound, InboundState, RecipientRole, Route, envelope_sender_of
from listbot.core.store.claims import claim_rows
from listbot.core.store.schema import inbound
from listbot.core.store.unit import Unit


@dataclass(frozen=True)
class Arrival:
    """One message for one recipient, as the intake hands it to the store."""

    source: str
    envelope_from: str
    recipient: str
    route: Route
    raw: bytes


def arrival_row(a: Arrival, now: datetime) -> dict[str, Any]:
    return {
        "source": a.source,
        "envelope_from": a.envelope_from,
        "recipient": a.recipient,
        "list_name": a.route.list_name,
        "role": a.route.role.value,
        "detail": a.route.detail,
        "raw": a.raw,
        "size": len(a.raw),
        "content_hash": hashlib.sha256(a.raw).hexdigest(),
        "received_at": now,
        "state": InboundState.NEW.value,
        "attempts": 0,
    }


async def insert_arrivals(
    tx: Unit, arrivals: Sequence[Arrival], now: datetime
) -> list[int]:
    rows = [arrival_row(a, now) for a in arrivals]
    if not tx.sqlite:
        result = await tx.conn.execute(
            insert(inbound).returning(inbound.c.id, sort_by_parameter_order=True), rows
        )
        return [r.id for r in result]
    # SQLAlchemy cannot prove RETURNING order on SQLite and would send one INSERT per
    # row. Under SQLite's single writer, one multi-row INSERT takes rowids in the order
    # of its VALUES, each above every existing one: the sorted ids are in row order.
    result = await tx.conn.execute(insert(inbound).returning(inbound.c.id), rows)
    return sorted(r.id for r in result)


def to_inbound(r: Row[Any]) -> Inbound:
    return Inbound(
        id=r.id,
        source=r.source,
        envelope_from=r.envelope_from,
        recipient=r.recipient,
        list_name=r.list_name,
        role=RecipientRole(r.role),
        detail=r.detail,
        raw=r.raw,
        received_at=r.received_at,
        attempts=r.attempts,
    )


async def claim(
    tx: Unit, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Inbound]:
    claimable = or_(
        inbound.c.state == InboundState.NEW.value,
        and_(inbound.c.state == InboundState.CLAIMED.value, inbound.c.lease_until < now),
    )
    rows = await claim_rows(tx, inbound, claimable, order=(inbound.c.id,), limit=limit,
                            values={"state": InboundState.CLAIMED.value,
                                    "claimed_by": owner, "lease_until": now + lease})
    return sorted((to_inbound(r) for r in rows), key=lambda m: m.id)


async def finish(tx: Unit, msg_id: int, owner: str, now: datetime) -> bool:
    """Mark done only while we still hold the claim; False means another worker took it."""
    result = await tx.conn.execute(
        update(inbound)
        .where(
            inbound.c.id == msg_id,
            inbound.c.claimed_by == owner,
            inbound.c.state == InboundState.CLAIMED.value,
        )
        .values(state=InboundState.DONE.value, done_at=now, lease_until=None)
    )
    return result.rowcount == 1


async def quarantine(
    tx: Unit, msg_id: int, owner: str | None, error: str, now: datetime
) -> bool:
    cond = [inbound.c.id == msg_id]
    if owner is not None:
        cond.append(inbound.c.claimed_by == owner)
    result = await tx.conn.execute(
        update(inbound)
        .where(*cond)
        .values(state=InboundState.QUARANTINED.value, error=error[:2000], done_at=now,
                lease_until=None)
    )
    return result.rowcount == 1


async def retry(tx: Unit, msg_id: int) -> bool:
    result = await tx.conn.execute(
        update(inbound)
        .where(inbound.c.id == msg_id, inbound.c.state == InboundState.QUARANTINED.value)
        .values(state=InboundState.NEW.value, error=None, claimed_by=None, done_at=None)
    )
    return result.rowcount == 1


async def listing(tx: Unit, states: Sequence[InboundState]) -> list[dict[str, Any]]:
    cols = [c for c in inbound.c if c.name != "raw"]
    result = await tx.conn.execute(
        select(*cols).where(inbound.c.state.in_([s.value for s in states])).order_by(inbound.c.id)
    )
    return [dict(r._mapping) for r in result]


async def get_raw(tx: Unit, msg_id: int) -> bytes | None:
    value = await tx.conn.scalar(select(inbound.c.raw).where(inbound.c.id == msg_id))
    return bytes(value) if value is not None else None


async def envelope_sender(tx: Unit, msg_id: int) -> str | None:
    """As Inbound.envelope_sender for a stored message; None too if the row is gone."""
    row = (await tx.conn.execute(select(inbound.c.source, inbound.c.envelope_from)
                                 .where(inbound.c.id == msg_id))).first()
    return None if row is None else envelope_sender_of(row.source, row.envelope_from)


async def counts(tx: Unit) -> dict[str, int]:
    result = await tx.conn.execute(select(inbound.c.state, func.count()).group_by(inbound.c.state))
    return {row[0]: row[1] for row in result}
