"""The per-address limit on automatic replies (docs/design.md "No loops, no backscatter").

The outbox is the limit's memory: every notice queued to an address counts, whichever
handler queued it, so the limit holds across handlers, restarts and daemons sharing
one database (an in-memory counter would do none of these).
"""

from __future__ import annotations

from datetime import timedelta

from listbot.core.config import Config
from listbot.core.store import Tx

WINDOW = timedelta(hours=1)


def spellings(address: str) -> frozenset[str]:
    """Every form a handler may have queued a notice to `address` under: as given,
    lower-cased, and with its domain as A-label and as U-label. Handlers answer the
    envelope sender (as the MTA gave it) or the parsed From (A-label), and one address
    must not get a limit per spelling."""
    lowered = address.lower()
    forms = {address, lowered}
    local, _, domain = lowered.rpartition("@")
    if local and domain:
        for convert in (_a_label, _u_label):
            if (other := convert(domain)) is not None:
                forms.add(f"{local}@{other}")
    return frozenset(forms)


def _a_label(domain: str) -> str | None:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _u_label(domain: str) -> str | None:
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return None


async def within_reply_rate(tx: Tx, cfg: Config, address: str) -> bool:
    """Whether one more notice to `address` stays within `reply_rate_per_hour`."""
    return await tx.notices_since(spellings(address), tx.now - WINDOW) < cfg.reply_rate_per_hour
