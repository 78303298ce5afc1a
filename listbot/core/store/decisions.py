"""Store operations of the decision-token service (see listbot.moderation.decisions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update

from listbot.core.errors import TemporaryError
from listbot.core.store.schema_moderation import decision_items, decision_tokens
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_if_absent, insert_new

OPEN = "open"
DECIDED = "decided"


@dataclass(frozen=True)
class TokenRecord:
    id: int
    kind: str
    item_id: str
    list_name: str
    issued_to: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None


@dataclass(frozen=True)
class ItemRecord:
    kind: str
    item_id: str
    list_name: str
    state: str
    decided_by: str | None
    decided_at: datetime | None
    verb: str | None
    reason: str | None
    token_id: int | None


async def open_item(tx: Unit, kind: str, item_id: str, list_name: str,
                    now: datetime) -> None:
    """Make (kind, item_id) decidable; a second call for the same item changes nothing."""
    await insert_if_absent(tx, decision_items, {
        "kind": kind, "item_id": item_id, "list_name": list_name, "state": OPEN,
        "opened_at": now}, keys=("kind", "item_id"))


async def insert_token(tx: Unit, *, digest: str, kind: str, item_id: str,
                       list_name: str, issued_to: str | None, now: datetime,
                       expires_at: datetime) -> int:
    """A token drawn twice (a caller's token reused) is TemporaryError: drawn anew."""
    row = await insert_new(tx, decision_tokens, {
        "digest": digest, "kind": kind, "item_id": item_id, "list_name": list_name,
        "issued_to": issued_to, "created_at": now, "expires_at": expires_at},
        keys=("digest",), taken=TemporaryError("reply token issued already"))
    return int(row.id)


async def find_token(tx: Unit, digest: str) -> TokenRecord | None:
    row = (await tx.conn.execute(select(decision_tokens).where(
        decision_tokens.c.digest == digest))).first()
    if row is None:
        return None
    return TokenRecord(id=row.id, kind=row.kind, item_id=row.item_id, list_name=row.list_name,
                       issued_to=row.issued_to, created_at=row.created_at,
                       expires_at=row.expires_at, used_at=row.used_at, used_by=row.used_by)


async def get_item(tx: Unit, kind: str, item_id: str) -> ItemRecord | None:
    row = (await tx.conn.execute(select(decision_items).where(
        decision_items.c.kind == kind, decision_items.c.item_id == item_id))).first()
    if row is None:
        return None
    return ItemRecord(kind=row.kind, item_id=row.item_id, list_name=row.list_name,
                      state=row.state, decided_by=row.decided_by, decided_at=row.decided_at,
                      verb=row.verb, reason=row.reason, token_id=row.token_id)


async def use_token(tx: Unit, token_id: int, used_by: str, now: datetime) -> bool:
    """Spend a token: only one caller ever sees True, and never after it expired."""
    result = await tx.conn.execute(update(decision_tokens).where(and_(
        decision_tokens.c.id == token_id, decision_tokens.c.used_at.is_(None),
        decision_tokens.c.expires_at > now)).values(used_at=now, used_by=used_by))
    return result.rowcount == 1


async def claim_decision(tx: Unit, *, kind: str, item_id: str, decided_by: str,
                         verb: str, reason: str, token_id: int | None, now: datetime) -> bool:
    """First decision wins: the conditional UPDATE succeeds for exactly one caller."""
    result = await tx.conn.execute(update(decision_items).where(and_(
        decision_items.c.kind == kind, decision_items.c.item_id == item_id,
        decision_items.c.state == OPEN)).values(
            state=DECIDED, decided_by=decided_by, decided_at=now, verb=verb, reason=reason,
            token_id=token_id))
    return result.rowcount == 1
