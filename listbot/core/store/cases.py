"""Store operations on security cases. Each takes an open `Tx` (one transaction).

Public functions used by other features:
- `case_parties(tx)`: case id -> addresses the audience gate admits for that case
  alone (the reporter and the outside parties currently added).
- `get_case(tx, case_id)`: the `Case` with its `timeline`, `embargo_at` (the public
  release instant, aware UTC) and `state`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, select, update

from listbot.core.calendar.timeline import Timeline
from listbot.core.case_model import (
    FINISHED_STATES,
    Case,
    CaseState,
    MessageKind,
    Party,
    format_case_id,
)
from listbot.core.errors import NotFound, Refused, TemporaryError
from listbot.core.store import Tx
from listbot.core.store.schema_cases import case_messages, case_reminders, cases
from listbot.core.store.schema_cases import case_parties as parties_table
from listbot.core.store.upsert import insert_if_absent, insert_new

MAX_REFERENCES = 100


def _to_case(r: Row[Any]) -> Case:
    return Case(id=r.id, state=CaseState(r.state), reporter=r.reporter,
                reporter_fingerprint=r.reporter_fingerprint, subject=r.subject,
                opened_at=r.opened_at, timeline=Timeline.from_dict(json.loads(r.timeline)),
                embargo_at=r.embargo_at, cve_ids=tuple(json.loads(r.cve_ids)),
                advisory=r.advisory, credits=r.credits, notes=r.notes,
                patch_attached=bool(r.patch_attached))


async def next_case_id(tx: Tx, prefix: str, year: int) -> str:
    """The id the next case of `year` gets (read before the transaction that opens it,
    so the acknowledgement naming it can be signed outside any transaction)."""
    last = await tx.conn.scalar(select(func.max(cases.c.seq)).where(
        and_(cases.c.prefix == prefix, cases.c.year == year)))
    return format_case_id(prefix, year, int(last or 0) + 1)


async def open_case(tx: Tx, *, case_id: str, reporter: str, subject: str,
                    timeline: Timeline, reporter_fingerprint: str | None) -> Case:
    """Open the case `case_id` (from `next_case_id`). Of two daemons racing for a
    number the loser gets TemporaryError: its message is handled again, with the next
    number."""
    prefix, year_text, seq_text = case_id.rsplit("-", 2)
    year, seq = int(year_text), int(seq_text)
    await insert_new(tx, cases, {
        "id": case_id, "prefix": prefix, "year": year, "seq": seq,
        "state": CaseState.NEW.value, "reporter": reporter,
        "reporter_fingerprint": reporter_fingerprint, "subject": subject[:500],
        "opened_at": timeline.arrival, "timeline": json.dumps(timeline.to_dict()),
        "embargo_at": timeline.public_at, "cve_ids": "[]", "advisory": None, "credits": "",
        "notes": "", "patch_attached": False},
        keys=None, taken=TemporaryError(f"case number {case_id} was taken meanwhile"))
    case = await get_case(tx, case_id)
    await tx.audit("listbot", "case.opened", f"case:{case_id}",
                   {"reporter": reporter, "public_at": timeline.public_at.isoformat()})
    return case


async def find_case(tx: Tx, case_id: str) -> Case | None:
    row = (await tx.conn.execute(select(cases).where(cases.c.id == case_id.upper()))).first()
    return _to_case(row) if row is not None else None


async def get_case(tx: Tx, case_id: str) -> Case:
    case = await find_case(tx, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


async def list_cases(tx: Tx, states: Sequence[CaseState] = ()) -> list[Case]:
    query = select(cases).order_by(cases.c.opened_at, cases.c.id)
    if states:
        query = query.where(cases.c.state.in_([s.value for s in states]))
    return [_to_case(r) for r in await tx.conn.execute(query)]


async def case_by_message_ids(tx: Tx, message_ids: Sequence[str]) -> str | None:
    """The case a reply belongs to, from the Message-IDs it refers to (newest first)."""
    # One query, however long the sender made References; the closest ancestor wins.
    wanted = list(message_ids[:MAX_REFERENCES])
    if not wanted:
        return None
    rows = await tx.conn.execute(select(case_messages.c.message_id, case_messages.c.case_id)
                                 .where(case_messages.c.message_id.in_(wanted)))
    found = {r.message_id: str(r.case_id) for r in rows}
    return next((found[mid] for mid in wanted if mid in found), None)


async def record_message(tx: Tx, case_id: str, *, inbound_id: int | None,
                         message_id: str | None, kind: MessageKind, sender: str,
                         subject: str, encrypted: bool, plaintext: str | None) -> None:
    await tx.conn.execute(insert(case_messages).values(
        case_id=case_id, inbound_id=inbound_id, message_id=message_id, kind=kind.value,
        sender=sender, subject=subject[:500], at=tx.now, encrypted=encrypted,
        plaintext=plaintext))


async def messages(tx: Tx, case_id: str) -> list[dict[str, Any]]:
    rows = await tx.conn.execute(select(case_messages).where(
        case_messages.c.case_id == case_id).order_by(case_messages.c.id))
    return [{"at": r.at, "kind": r.kind, "sender": r.sender, "subject": r.subject,
             "message_id": r.message_id, "encrypted": r.encrypted} for r in rows]


async def set_reporter_key_if_none(tx: Tx, case_id: str, fingerprint: str) -> bool:
    """The case's first reporter key; False when it already had one (first key wins)."""
    result = await tx.conn.execute(update(cases).where(
        cases.c.id == case_id, cases.c.reporter_fingerprint.is_(None)).values(
        reporter_fingerprint=fingerprint))
    if result.rowcount != 1:
        return False
    await tx.audit("listbot", "case.reporter_key_set", f"case:{case_id}",
                   {"fingerprint": fingerprint})
    return True


# Fields an admin may change with `listbot case set`, each audited with old and new value.
SETTABLE = ("state", "cve_ids", "embargo_at", "advisory", "credits", "notes",
            "patch_attached", "reporter_fingerprint")


async def update_case(tx: Tx, case_id: str, actor: str, changes: Mapping[str, Any],
                      *, timeline: Timeline | None = None) -> Case:
    before = await get_case(tx, case_id)
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in SETTABLE:
            raise Refused(f"case field {key} cannot be set")
        values[key] = json.dumps(list(value)) if key == "cve_ids" else (
            value.value if isinstance(value, CaseState) else value)
    if timeline is not None:
        values["timeline"] = json.dumps(timeline.to_dict())
        values.setdefault("embargo_at", timeline.public_at)
    if not values:
        return before
    await tx.conn.execute(update(cases).where(cases.c.id == before.id).values(**values))
    after = await get_case(tx, case_id)
    detail = {k: {"old": _plain(getattr(before, k if k != "timeline" else "timeline")),
                  "new": _plain(getattr(after, k))} for k in values}
    await tx.audit(actor, "case.set", f"case:{before.id}", detail)
    return after


def _plain(value: Any) -> Any:
    if isinstance(value, Timeline):
        return {"predisclosure_at": value.predisclosure_at.isoformat(),
                "public_at": value.public_at.isoformat(), "basis": value.public_basis}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


# --- outside parties ------------------------------------------------------------------


async def add_party(tx: Tx, case_id: str, address: str, name: str, actor: str, *,
                    fingerprint: str | None = None) -> Party:
    """Refused when `address` is a current party already (a concurrent add included)."""
    case = await get_case(tx, case_id)
    await insert_new(tx, parties_table, {
        "case_id": case.id, "address": address, "name": name, "added_at": tx.now,
        "added_by": actor, "fingerprint": fingerprint}, keys=("case_id", "address"),
        where=parties_table.c.removed_at.is_(None),
        taken=Refused(f"{address} is already a party of {case.id}"))
    await tx.audit(actor, "case.party_added", f"case:{case.id}", {
        "address": address, "name": name, "fingerprint": fingerprint})
    return Party(case.id, address, name, tx.now, actor, fingerprint)


async def set_party_key(tx: Tx, case_id: str, address: str, fingerprint: str,
                        actor: str) -> str | None:
    """Record the key of a current party; returns the fingerprint it replaced."""
    case = await get_case(tx, case_id)
    current = {p.address: p for p in await parties(tx, case.id)}
    if address not in current:
        raise NotFound(f"{address} is not a party of {case.id}")
    old = current[address].fingerprint
    await tx.conn.execute(update(parties_table).where(and_(
        parties_table.c.case_id == case.id, parties_table.c.address == address,
        parties_table.c.removed_at.is_(None))).values(fingerprint=fingerprint))
    await tx.audit(actor, "case.party_key_set", f"case:{case.id}", {
        "address": address, "fingerprint": fingerprint, "previous": old})
    return old


async def remove_party(tx: Tx, case_id: str, address: str, actor: str) -> None:
    case = await get_case(tx, case_id)
    result = await tx.conn.execute(update(parties_table).where(and_(
        parties_table.c.case_id == case.id, parties_table.c.address == address,
        parties_table.c.removed_at.is_(None))).values(removed_at=tx.now))
    if result.rowcount != 1:
        raise NotFound(f"{address} is not a party of {case.id}")
    await tx.audit(actor, "case.party_removed", f"case:{case.id}", {"address": address})


async def parties(tx: Tx, case_id: str) -> list[Party]:
    rows = await tx.conn.execute(select(parties_table).where(and_(
        parties_table.c.case_id == case_id, parties_table.c.removed_at.is_(None)))
        .order_by(parties_table.c.id))
    return [Party(r.case_id, r.address, r.name, r.added_at, r.added_by, r.fingerprint)
            for r in rows]


async def keyed_parties(tx: Tx) -> list[Party]:
    """Current parties with a key, of cases still under way: whose key expiry matters."""
    rows = await tx.conn.execute(
        select(parties_table).join(cases, cases.c.id == parties_table.c.case_id).where(
            parties_table.c.removed_at.is_(None), parties_table.c.fingerprint.is_not(None),
            cases.c.state.not_in([s.value for s in FINISHED_STATES]))
        .order_by(parties_table.c.id))
    return [Party(r.case_id, r.address, r.name, r.added_at, r.added_by, r.fingerprint)
            for r in rows]


async def case_parties(tx: Tx) -> dict[str, frozenset[str]]:
    """For the audience gate: who may receive a case's embargoed mail besides members
    and the team — that case's reporter and its current outside parties, nobody else."""
    found: dict[str, set[str]] = {}
    for r in await tx.conn.execute(select(cases.c.id, cases.c.reporter)):
        found.setdefault(r.id, set()).add(r.reporter)
    for r in await tx.conn.execute(select(parties_table.c.case_id, parties_table.c.address)
                                   .where(parties_table.c.removed_at.is_(None))):
        found.setdefault(r.case_id, set()).add(r.address)
    return {k: frozenset(v) for k, v in found.items()}


# --- reminders ------------------------------------------------------------------------


async def claim_reminder(tx: Tx, case_id: str, key: str) -> bool:
    """Record a reminder as sent; False when it already was (by us or another daemon)."""
    return await insert_if_absent(tx, case_reminders, {
        "case_id": case_id, "key": key, "sent_at": tx.now}, keys=("case_id", "key"))


async def sent_reminders(tx: Tx, case_id: str) -> list[tuple[str, datetime]]:
    rows = await tx.conn.execute(select(case_reminders.c.key, case_reminders.c.sent_at)
                                 .where(case_reminders.c.case_id == case_id)
                                 .order_by(case_reminders.c.id))
    return [(r.key, r.sent_at) for r in rows]


async def mark_patch(tx: Tx, case_id: str) -> None:
    """A patch came with a case message: the no-patch reminder no longer applies."""
    result = await tx.conn.execute(update(cases).where(and_(
        cases.c.id == case_id, cases.c.patch_attached.is_(False))).values(patch_attached=True))
    if result.rowcount:
        await tx.audit("listbot", "case.patch_attached", f"case:{case_id}", {})
