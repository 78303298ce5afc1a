"""Deliverability of member role addresses: a member that silently stops receiving
advisories is a risk to the process.

Bounces to <list>-bounces@ are parsed with flufl.bounce; permanent relay refusals
(FAILED outbox rows) are fed into the same record. When a member address collects
`bounce_threshold` permanent failures within `bounce_window`, the team is alerted
(once per window).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from email.message import Message

import structlog
from flufl.bounce import all_failures

from listbot.applications.config import MembersConfig
from listbot.core.config import Config
from listbot.core.mail.address import normalize_address
from listbot.core.model import Inbound
from listbot.core.outbox.alerts import raise_alert
from listbot.core.store import Tx
from listbot.core.store import roster as roster_ops
from listbot.core.worker import Effects, OneByOne

log = structlog.get_logger("listbot.bounces")


def should_alert(failures: int, threshold: int, last_alert: datetime | None, now: datetime,
                 window: timedelta) -> bool:
    """Repeated permanent failures, and no alert about them in this window yet."""
    return failures >= threshold and (last_alert is None or last_alert <= now - window)


def _addresses(found: Iterable[bytes | str]) -> set[str]:
    out = set()
    for item in found:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        try:
            out.add(normalize_address(text.strip().strip("<>")))
        except ValueError:
            continue
    return out


def parse_bounce(msg: Message) -> tuple[set[str], set[str]]:
    """(temporary, permanent) failed recipients of a parsed report (`Inbound.view.tree`);
    a message no detector reads gives none."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a hostile or broken report must not stop the worker
        return set(), set()
    perm = _addresses(permanent)
    return _addresses(temporary) - perm, perm


async def note_failures(tx: Tx, cfg: Config, mc: MembersConfig, *, addresses: Iterable[str],
                        permanent: bool, source: str, source_id: str) -> list[str]:
    """Record failures of member addresses; alert on repeated permanent ones."""
    members = {m.address: m.name for m in await tx.members()}
    recorded = []
    for address in sorted(set(addresses)):
        if address not in members:
            continue
        if not await roster_ops.record_failure(
                tx, address=address, member_name=members[address], permanent=permanent,
                source=source, source_id=source_id, now=tx.now):
            continue
        recorded.append(address)
        if permanent:
            await _maybe_alert(tx, cfg, mc, address, members[address])
    return recorded


async def _maybe_alert(tx: Tx, cfg: Config, mc: MembersConfig, address: str,
                       name: str) -> None:
    since = tx.now - mc.bounce_window
    count = await roster_ops.permanent_failures_since(tx, address, since)
    last = await roster_ops.last_alert(tx, address)
    if not should_alert(count, mc.bounce_threshold, last, tx.now, mc.bounce_window):
        return
    await roster_ops.record_alert(tx, address, count, tx.now)
    await raise_alert(tx, cfg, "member_undeliverable",
                      f"{name}: {count} permanent delivery failures to its role address",
                      {"member": name, "address": address, "failures": count,
                       "window_days": mc.bounce_window.days,
                       "hint": "listbot members failures"})


class BounceHandler(OneByOne):
    """Mail to <list>-bounces@: delivery reports about what we sent."""

    def __init__(self, cfg: Config, mc: MembersConfig) -> None:
        self.cfg, self.mc = cfg, mc

    async def decide(self, msg: Inbound) -> Effects:
        temporary, permanent = parse_bounce(msg.view.tree)
        log.info("bounce.parsed", inbound_id=msg.id, permanent=len(permanent),
                 temporary=len(temporary))
        return Effects.call(self.record, msg, temporary, permanent)

    async def record(self, tx: Tx, msg: Inbound, temporary: set[str],
                     permanent: set[str]) -> None:
        """The reported failures, each counted once, and an alert past the threshold."""
        source_id = str(msg.id)
        perm = await note_failures(tx, self.cfg, self.mc, addresses=permanent,
                                   permanent=True, source="bounce", source_id=source_id)
        temp = await note_failures(tx, self.cfg, self.mc, addresses=temporary,
                                   permanent=False, source="bounce", source_id=source_id)
        await tx.audit("listbot", "bounce_recorded", f"inbound:{msg.id}",
                       {"list": msg.list_name, "permanent": perm, "temporary": temp,
                        "unknown": len(permanent | temporary) - len(perm) - len(temp)})


async def scan_outbox_failures(tx: Tx, cfg: Config, mc: MembersConfig) -> int:
    """Permanent relay refusals (FAILED outbox rows) to member addresses, once each."""
    members = frozenset(m.address for m in await tx.members())
    found = await roster_ops.unrecorded_outbox_failures(tx, members)
    for outbox_id, address in found:
        await note_failures(tx, cfg, mc, addresses=[address], permanent=True, source="outbox",
                            source_id=str(outbox_id))
    return len(found)
