"""Store operations of applications (see listbot.applications)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, select, update

from listbot.core.errors import TemporaryError
from listbot.core.store.schema_applications import application_messages, applications
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_new

OPEN = "open"
ACCEPTED = "accepted"
REJECTED = "rejected"


@dataclass(frozen=True)
class ApplicationRow:
    id: int
    list_name: str
    org_key: str
    organisation: str | None
    sender: str
    state: str
    fields: str
    checklist: str
    complete: bool
    messages: int
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


@dataclass(frozen=True)
class MessageRow:
    id: int
    inbound_id: int
    sender: str
    subject: str
    message_id: str | None
    body_hash: str
    duplicate: bool
    received_at: datetime


def _row(r: Row[Any]) -> ApplicationRow:
    return ApplicationRow(**{c: getattr(r, c) for c in ApplicationRow.__dataclass_fields__})


async def find_open(tx: Unit, list_name: str,
                    org_key: str) -> ApplicationRow | None:
    row = (await tx.conn.execute(select(applications).where(
        applications.c.list_name == list_name, applications.c.org_key == org_key,
        applications.c.state == OPEN).order_by(applications.c.id.desc()))).first()
    return _row(row) if row is not None else None


async def get(tx: Unit, app_id: int) -> ApplicationRow | None:
    row = (await tx.conn.execute(select(applications).where(applications.c.id == app_id))).first()
    return _row(row) if row is not None else None


async def listing(tx: Unit, states: list[str] | None) -> list[ApplicationRow]:
    query = select(applications).order_by(applications.c.id)
    if states:
        query = query.where(applications.c.state.in_(states))
    return [_row(r) for r in await tx.conn.execute(query)]


async def create(tx: Unit, *, list_name: str, org_key: str,
                 organisation: str | None, sender: str, fields: str, checklist: str,
                 complete: bool, now: datetime) -> int:
    """A new open application. Another daemon may have opened this organisation's
    first: TemporaryError, the message is handled again and becomes a follow-up."""
    row = await insert_new(tx, applications, {
        "list_name": list_name, "org_key": org_key, "organisation": organisation,
        "sender": sender, "state": OPEN, "fields": fields, "checklist": checklist,
        "complete": complete, "messages": 1, "created_at": now, "updated_at": now},
        keys=("list_name", "org_key"), where=applications.c.state == OPEN,
        taken=TemporaryError(f"concurrent application from {org_key}"))
    return int(row.id)


async def update_open(tx: Unit, app_id: int, *, organisation: str | None,
                      fields: str, checklist: str, complete: bool, now: datetime) -> bool:
    """Re-checked content of an application still open; False once it was decided."""
    result = await tx.conn.execute(update(applications).where(and_(
        applications.c.id == app_id, applications.c.state == OPEN)).values(
            organisation=organisation, fields=fields, checklist=checklist, complete=complete,
            messages=applications.c.messages + 1, updated_at=now))
    return result.rowcount == 1


async def settle(tx: Unit, app_id: int, state: str, *, by: str, reason: str,
                 now: datetime) -> bool:
    """Close an open application. Acceptance also requires the stored checklist to be
    complete in this very UPDATE, so a concurrent follow-up cannot slip an incomplete
    application through."""
    guard = [applications.c.id == app_id, applications.c.state == OPEN]
    if state == ACCEPTED:
        guard.append(applications.c.complete.is_(True))
    result = await tx.conn.execute(update(applications).where(and_(*guard)).values(
            state=state, decided_at=now, decided_by=by, decision_reason=reason))
    return result.rowcount == 1


async def add_message(tx: Unit, *, app_id: int, inbound_id: int, sender: str,
                      subject: str, message_id: str | None, body_hash: str, duplicate: bool,
                      now: datetime) -> None:
    """One row per inbound message: a message another handler recorded first (its lease
    ran out meanwhile) is TemporaryError, and is that handler's to finish."""
    await insert_new(tx, application_messages, {
        "application_id": app_id, "inbound_id": inbound_id, "sender": sender,
        "subject": subject, "message_id": message_id, "body_hash": body_hash,
        "duplicate": duplicate, "received_at": now}, keys=("inbound_id",),
        taken=TemporaryError(f"inbound {inbound_id} is recorded already"))


async def messages(tx: Unit, app_id: int) -> list[MessageRow]:
    rows = await tx.conn.execute(select(application_messages).where(
        application_messages.c.application_id == app_id).order_by(application_messages.c.id))
    return [MessageRow(id=r.id, inbound_id=r.inbound_id, sender=r.sender, subject=r.subject,
                       message_id=r.message_id, body_hash=r.body_hash, duplicate=r.duplicate,
                       received_at=r.received_at) for r in rows]
