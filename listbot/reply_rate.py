"""The per-address limit on automatic replies (DESIGN.md §4.4).

The outbox is the limit's memory: every notice queued to an address counts, whichever
handler queued it, so the limit holds across handlers, restarts and daemons sharing
one database (an in-memory counter would do none of these).
"""

from __future__ import annotations

from datetime import timedelta

from listbot.config import Config
from listbot.store import Tx

WINDOW = timedelta(hours=1)


async def within_reply_rate(tx: Tx, cfg: Config, address: str) -> bool:
    """Whether one more notice to `address` stays within `reply_rate_per_hour`."""
    return await tx.notices_since(address, tx.now - WINDOW) < cfg.reply_rate_per_hour
