"""Public copies built ahead of the embargo instant, so the instant only sends.

Encrypting a member's copy costs a gpg run (~5 ms, one at a time per keyring):
1,000 members would take seconds AT the instant. So when a release is armed
(scheduled, awaiting confirmation, moved, amended) every public row is written
in state STAGED with not_before = the instant and a dedupe key naming the
version and the instant. Delivery never claims STAGED rows; the release claim
(`release.Dispatcher`) turns exactly the rows of the released (version,
instant) into PENDING in its own transaction, so "never early, once" still
rests on the one conditional UPDATE. Any change of the instant or version
cancels the staged rows first, and the gate refuses a public advisory row
whose instant is not the one the advisory was released at.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from listbot.advisories import fanout
from listbot.advisories.config import AdvisoriesConfig
from listbot.advisories.doc import AdvisoryDoc
from listbot.advisories.render import Renderer
from listbot.core.clock import Clock
from listbot.core.errors import TemporaryError
from listbot.core.store import Store, Tx
from listbot.core.store import advisories as ops
from listbot.core.store.advisories import AdvisoryRow, AdvisoryState, VersionRow


class Advisories(Protocol):
    """What staging needs of the advisory service (advisories.service.Advisories)."""

    r: Renderer
    adv: AdvisoriesConfig
    store: Store
    clock: Clock

    async def load(self, number: int) -> tuple[AdvisoryRow, VersionRow]: ...
    def doc(self, adv: AdvisoryRow, v: VersionRow) -> AdvisoryDoc: ...
    async def locked(self, tx: Tx, seen: AdvisoryRow) -> AdvisoryRow: ...

log = structlog.get_logger("listbot.advisory_stage")

ARMED = (AdvisoryState.AWAITING_CONFIRMATION, AdvisoryState.SCHEDULED)


async def invalidate(tx: Tx, svc: Advisories, number: int, why: str) -> int:
    """Cancel every staged row of this advisory (in the caller's transaction)."""
    return await ops.cancel_staged(tx, fanout.key_prefix(svc.adv.prefix, number),
                                   keep=None, reason=f"cancelled: {why}")


async def stage(svc: Advisories, number: int, actor: str) -> int:
    """Build (encrypt) and store the public rows of an armed advisory; returns rows added.

    Idempotent: recipients already staged for this (version, instant) are skipped,
    so a confirmation after scheduling encrypts nothing again.
    """
    adv, cur = await svc.load(number)
    if adv.state not in ARMED:
        return 0
    prefix = svc.adv.prefix
    key = fanout.public_key(prefix, number, cur.version, adv.embargo_at)
    async with svc.store.unit() as tx:
        have = await ops.staged_recipients(tx, key)
    members = [m for m in await svc.store.members() if m.address not in have]
    doc = svc.doc(adv, cur)
    fan = await fanout.public_sealed(svc.r, doc, cur.public_raw, members, adv.embargo_at,
                                     now=svc.clock.now())
    return await _store(svc, adv, fan, key, actor)


async def _store(svc: Advisories, adv: AdvisoryRow, fan: fanout.Fanout, key: str,
                 actor: str) -> int:
    try:
        return await _store_rows(svc, adv, fan, key, actor)
    except TemporaryError:
        # Moved, cancelled or released while we encrypted: staging is only a head
        # start; the next arming stages again and the release claim builds what is missing.
        log.info("advisory.stage_skipped", advisory=adv.number)
        return 0


async def _store_rows(svc: Advisories, adv: AdvisoryRow, fan: fanout.Fanout, key: str,
                      actor: str) -> int:
    prefix, number = svc.adv.prefix, adv.number
    async with svc.store.unit() as tx:
        await svc.locked(tx, adv)  # moved meanwhile: TemporaryError, nothing staged
        await ops.cancel_staged(tx, fanout.key_prefix(prefix, number), keep=key,
                                reason="cancelled: superseded by a new version or instant")
        rows = 0
        for msg in fan.messages:
            ids = await tx.enqueue(msg)
            await ops.stage(tx, ids)
            rows += len(ids)
        await fanout.alert_refused(tx, svc.r, fan, f"advisory:{prefix}-{number}")
        await tx.audit(actor, "advisory.staged", f"advisory:{prefix}-{number}",
                       {"version": adv.current_version, "rows": rows,
                        "embargo_at": adv.embargo_at.isoformat()})
    return rows
