"""Small handlers shared by every list: addresses that must never act."""

from __future__ import annotations

import structlog

from listbot.core.model import Inbound
from listbot.core.worker import Effects, OneByOne

log = structlog.get_logger("listbot.handlers")


class RecordOnly(OneByOne):
    """Subscription requests (-request, -join, -subscribe) change nothing and get no reply:
    membership comes only from applications and the admin
    (docs/design.md "Applications to the pre-disclosure list")."""

    def __init__(self, action: str) -> None:
        self.action = action

    async def decide(self, msg: Inbound) -> Effects:
        log.info(self.action, inbound_id=msg.id, list=msg.list_name)
        return Effects.audit_only(msg, self.action,
                                  {"list": msg.list_name, "recipient": msg.recipient})
