"""Small handlers shared by every list: addresses that must never act."""

from __future__ import annotations

import structlog

from listbot.core.model import Inbound
from listbot.core.store import Tx
from listbot.core.worker import Effects

log = structlog.get_logger("listbot.handlers")


class RecordOnly:
    """Subscription requests (-request, -join, -subscribe) change nothing and get no reply:
    membership comes only from applications and the admin
    (docs/design.md "Applications to the pre-disclosure list")."""

    def __init__(self, action: str) -> None:
        self.action = action

    async def handle(self, msg: Inbound) -> Effects:
        log.info(self.action, inbound_id=msg.id, list=msg.list_name)

        async def effects(tx: Tx) -> None:
            await tx.audit("listbot", self.action, f"inbound:{msg.id}",
                           {"list": msg.list_name, "recipient": msg.recipient})
        return effects
