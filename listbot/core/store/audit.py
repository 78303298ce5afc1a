"""The append-only audit log: nothing here updates or deletes a row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from listbot.core.model import AuditEntry
from listbot.core.store.schema import audit
from listbot.core.store.unit import Unit


async def append(tx: Unit, *, at: datetime, actor: str, action: str, subject: str,
                 detail: Mapping[str, Any] | None = None) -> None:
    await tx.conn.execute(insert(audit).values(
        at=at, actor=actor, action=action, subject=subject,
        detail=json.dumps(dict(detail or {}), sort_keys=True, default=str),
    ))


async def listing(tx: Unit, *, subject: str | None = None,
                  action_prefix: str | None = None, limit: int = 200) -> list[AuditEntry]:
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if subject is not None:
        query = query.where(audit.c.subject == subject)
    if action_prefix is not None:
        query = query.where(audit.c.action.startswith(action_prefix))
    result = await tx.conn.execute(query)
    entries = [AuditEntry(id=r.id, at=r.at, actor=r.actor, action=r.action, subject=r.subject,
                          detail=json.loads(r.detail)) for r in result]
    return list(reversed(entries))
