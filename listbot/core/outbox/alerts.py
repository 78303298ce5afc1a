"""Alerts: something a person must look at. Logged, audited and mailed to the team,
all in the caller's transaction so an alert is never lost or half-written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from listbot.core.config import Config
from listbot.core.mail.outbound import mailbox, plain_message
from listbot.core.model import Audience, OutgoingMessage
from listbot.core.store import Tx

log = structlog.get_logger("listbot.alert")


async def raise_alert(tx: Tx, cfg: Config, kind: str, summary: str,
                      detail: Mapping[str, Any] | None = None) -> None:
    facts = dict(detail or {})
    log.error("alert", kind=kind, summary=summary, **facts)
    await tx.audit("listbot", f"alert.{kind}", kind, {"summary": summary, **facts})
    lines = [summary, ""] + [f"{k}: {v}" for k, v in sorted(facts.items())]
    raw = plain_message(
        sender=mailbox("listbot", cfg.team_address), to=list(cfg.team_recipients),
        subject=f"[listbot alert] {kind}: {summary}"[:200], text="\n".join(lines),
        domain=cfg.hostname, date=tx.now,
        extra=[("Auto-Submitted", "auto-generated"), ("X-Loop", cfg.team_address)],
    )
    await tx.enqueue(OutgoingMessage(
        audience=Audience.TEAM, envelope_from=cfg.team_address,
        recipients=cfg.team_recipients, raw=raw, reason=f"alert.{kind}",
    ))
