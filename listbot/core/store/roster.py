"""Store operations of the roster: public change history, key warnings, delivery
failures of member role addresses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, insert, select

from listbot.core.model import OutboxState
from listbot.core.store import members as member_ops
from listbot.core.store.schema import members, outbox
from listbot.core.store.schema_applications import (
    delivery_alerts,
    delivery_failures,
    key_warnings,
    roster_changes,
)
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_if_absent


@dataclass(frozen=True)
class RosterChange:
    id: int
    at: datetime
    member_name: str
    action: str
    text: str


async def record_change(tx: Unit, *, member_name: str, action: str, text: str,
                        actor: str, now: datetime) -> None:
    await tx.conn.execute(insert(roster_changes).values(
        at=now, member_name=member_name, action=action, text=text, actor=actor))


async def changes(tx: Unit) -> list[RosterChange]:
    rows = await tx.conn.execute(select(roster_changes).order_by(roster_changes.c.at,
                                                                 roster_changes.c.id))
    return [RosterChange(r.id, r.at, r.member_name, r.action, r.text) for r in rows]


async def version(tx: Unit) -> tuple[int, int, int]:
    """Changes whenever what the public roster shows may have: cheap to poll."""
    last_change = await tx.conn.scalar(select(func.max(roster_changes.c.id)))
    row = (await tx.conn.execute(select(func.count(), func.max(members.c.id)).where(
        members.c.removed_at.is_(None)))).one()
    return int(last_change or 0), int(row[0] or 0), int(row[1] or 0)


async def warn_once(tx: Unit, *, fingerprint: str, expires_at: datetime,
                    member_name: str, now: datetime) -> bool:
    """Claim the one warning for this key and expiry; False when it was already sent."""
    return await insert_if_absent(tx, key_warnings, {
        "fingerprint": fingerprint, "expires_at": expires_at, "member_name": member_name,
        "sent_at": now}, keys=("fingerprint", "expires_at"))


async def record_failure(tx: Unit, *, address: str, member_name: str | None,
                         permanent: bool, source: str, source_id: str,
                         now: datetime) -> bool:
    """Record one failure; False when this (source, id, address) was recorded before."""
    return await insert_if_absent(tx, delivery_failures, {
        "address": address, "member_name": member_name, "permanent": permanent,
        "source": source, "source_id": source_id, "at": now},
        keys=("source", "source_id", "address"))


async def permanent_failures_since(tx: Unit, address: str,
                                   since: datetime) -> int:
    value = await tx.conn.scalar(select(func.count()).select_from(delivery_failures).where(
        delivery_failures.c.address == address, delivery_failures.c.permanent.is_(True),
        delivery_failures.c.at >= since))
    return int(value or 0)


async def last_alert(tx: Unit, address: str) -> datetime | None:
    value = await tx.conn.scalar(select(func.max(delivery_alerts.c.at)).where(
        delivery_alerts.c.address == address))
    return value if isinstance(value, datetime) else None


async def record_alert(tx: Unit, address: str, failures: int,
                       now: datetime) -> None:
    await tx.conn.execute(insert(delivery_alerts).values(address=address, at=now,
                                                         failures=failures))


async def failure_summary(tx: Unit) -> list[dict[str, object]]:
    rows = await tx.conn.execute(
        select(delivery_failures.c.address, delivery_failures.c.member_name,
               delivery_failures.c.permanent, func.count().label("count"),
               func.max(delivery_failures.c.at).label("last_at"))
        .group_by(delivery_failures.c.address, delivery_failures.c.member_name,
                  delivery_failures.c.permanent)
        .order_by(delivery_failures.c.address))
    return [dict(r._mapping) for r in rows]


async def unrecorded_outbox_failures(tx: Unit,
                                     recipients: frozenset[str]) -> list[tuple[int, str]]:
    """FAILED outbox rows (permanent refusals by the relay) to these addresses that are
    not in the delivery record yet. Rows fail in any order, so no high-water mark."""
    if not recipients:
        return []
    # An anti-join: the already recorded ones stay in the database, however many.
    recorded = select(delivery_failures.c.id).where(
        delivery_failures.c.source == "outbox",
        delivery_failures.c.source_id == cast(outbox.c.id, String),
        delivery_failures.c.address == outbox.c.recipient)
    rows = await tx.conn.execute(select(outbox.c.id, outbox.c.recipient).where(
        outbox.c.state == OutboxState.FAILED.value,
        outbox.c.recipient.in_(sorted(recipients)), ~recorded.exists()).order_by(outbox.c.id))
    return [(int(r.id), str(r.recipient)) for r in rows]


async def load_public(tx: Unit) -> tuple[list[tuple[str, datetime]],
                                                      list[tuple[datetime, str]]]:
    """Names with their dates, and the change history: what the public roster shows."""
    current = [(m.name, m.added_at) for m in await member_ops.current(tx)]
    return current, [(c.at, c.text) for c in await changes(tx)]
