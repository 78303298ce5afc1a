"""Member organisations: one role address each; removals are kept for history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update

from listbot.core.errors import NotFound, Refused
from listbot.core.model import Member
from listbot.core.store.schema import members
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_new


def to_member(r: Row[Any]) -> Member:
    return Member(id=r.id, name=r.name, address=r.address, fingerprint=r.fingerprint,
                  added_at=r.added_at)


async def add(tx: Unit, name: str, address: str, fingerprint: str | None,
              now: datetime) -> Member:
    """Refused when a current member has this name or this address (two unique keys:
    either decides, a concurrent add included)."""
    row = await insert_new(
        tx, members, {"name": name, "address": address, "fingerprint": fingerprint,
                      "added_at": now}, keys=None, returning=list(members.c),
        taken=Refused(f"a current member already has the name {name!r} or address {address}"))
    return to_member(row)


async def remove(tx: Unit, name_or_address: str, reason: str,
                 now: datetime) -> Member:
    current = members.c.removed_at.is_(None)
    row = (await tx.conn.execute(
        select(members).where(current, (members.c.name == name_or_address)
                              | (members.c.address == name_or_address.lower()))
    )).first()
    if row is None:
        raise NotFound(f"no current member {name_or_address!r}")
    await tx.conn.execute(update(members).where(members.c.id == row.id)
                          .values(removed_at=now, removal_reason=reason))
    return to_member(row)


async def set_fingerprint(tx: Unit, name: str, fingerprint: str | None) -> Member:
    result = await tx.conn.execute(
        update(members).where(members.c.removed_at.is_(None), members.c.name == name)
        .values(fingerprint=fingerprint).returning(*members.c)
    )
    row = result.first()
    if row is None:
        raise NotFound(f"no current member {name!r}")
    return to_member(row)


async def current(tx: Unit) -> list[Member]:
    result = await tx.conn.execute(
        select(members).where(members.c.removed_at.is_(None)).order_by(func.lower(members.c.name))
    )
    return [to_member(r) for r in result]


async def history(tx: Unit) -> list[dict[str, Any]]:
    result = await tx.conn.execute(select(members).order_by(members.c.added_at, members.c.id))
    return [dict(r._mapping) for r in result]
