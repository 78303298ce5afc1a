"""Arming, moving and cancelling a release; release-now; show, status, report.

Every change is audited with the acting identity. Under the two-person rule a
release is armed only once a second, different team member confirms it, and
moving an armed instant disarms it again until confirmed anew.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from listbot.advisories import fanout
from listbot.advisories import stage as staging
from listbot.advisories.render import doc_to_json
from listbot.advisories.service import (
    EARLY_NOTE,
    OPEN,
    Advisories,
    status_label,
    subject_of,
    whole_minute,
)
from listbot.core.errors import Refused, UsageError
from listbot.core.model import AuditEntry
from listbot.core.outbox.alerts import raise_alert
from listbot.core.store import advisories as ops
from listbot.core.store.advisories import AdvisoryState, VersionRow


def team_identity(svc: Advisories, actor: str) -> str | None:
    """The team member an `--as` name or address stands for, if any."""
    who = actor.split(":", 1)[-1].strip().lower()
    for m in svc.r.cfg.team_members:
        if who in (m.name.lower(), m.address.lower()):
            return m.address
    return None


async def schedule(svc: Advisories, number: int, actor: str, *, dry_run: bool = False) -> str:
    adv, cur = await svc.load(number)
    if adv.state is not AdvisoryState.DRAFT:
        raise Refused(f"advisory {number} is {adv.state.value}, not a draft")
    if adv.embargo_at <= svc.clock.now():
        raise Refused("the embargo instant has passed; use release-now")
    subject = subject_of(svc.adv.prefix, number)
    if dry_run:
        fan = fanout.public(svc.r, svc.doc(adv, cur), cur.public_raw,
                            await svc.store.members(), adv.embargo_at)
        async with svc.store.unit() as tx:
            await tx.enqueue(fanout.dry_run(svc.r, fan, cur.public_raw, "release"))
            await tx.audit(actor, "advisory.schedule.dry_run", subject,
                           {"version": cur.version})
        return "dry-run sent to the team"
    state = (AdvisoryState.AWAITING_CONFIRMATION if svc.adv.two_person_rule
             else AdvisoryState.SCHEDULED)
    async with svc.store.unit() as tx:
        await svc.locked(tx, adv)
        await ops.set_fields(tx, number, [AdvisoryState.DRAFT], state=state.value,
                             scheduled_by=actor, confirmed_by=None)
        await tx.audit(actor, "advisory.schedule", subject,
                       {"embargo_at": adv.embargo_at.isoformat(), "state": state.value})
    # Encrypt the public copies now, so that the instant only has to send them.
    await staging.stage(svc, number, actor)
    await svc.index.write(svc.store)
    return state.value


async def confirm(svc: Advisories, number: int, actor: str) -> None:
    """The second person arms the release; it must be a different team member."""
    adv, _ = await svc.load(number)
    if adv.state is not AdvisoryState.AWAITING_CONFIRMATION:
        raise Refused(f"advisory {number} is {adv.state.value}, not awaiting confirmation")
    second = team_identity(svc, actor)
    first = team_identity(svc, adv.scheduled_by or "")
    if second is None:
        raise Refused(f"{actor} is not a team member (use --as NAME)")
    if first is None or second == first:
        raise Refused("the release must be confirmed by a second, different team member")
    async with svc.store.unit() as tx:
        await svc.locked(tx, adv)
        await ops.set_fields(tx, number, [AdvisoryState.AWAITING_CONFIRMATION],
                             state=AdvisoryState.SCHEDULED.value, confirmed_by=actor)
        await tx.audit(actor, "advisory.confirm", subject_of(svc.adv.prefix, number),
                       {"scheduled_by": adv.scheduled_by})
    await staging.stage(svc, number, actor)  # normally already staged: a no-op
    await svc.index.write(svc.store)


async def cancel(svc: Advisories, number: int, actor: str) -> None:
    adv, _ = await svc.load(number)
    armed = (AdvisoryState.SCHEDULED, AdvisoryState.AWAITING_CONFIRMATION)
    if adv.state not in armed:
        raise Refused(f"advisory {number} is {adv.state.value}; nothing to cancel")
    async with svc.store.unit() as tx:
        if not await ops.set_fields(tx, number, armed, state=AdvisoryState.DRAFT.value,
                                    confirmed_by=None):
            raise Refused(f"advisory {number} was released meanwhile")
        await staging.invalidate(tx, svc, number, "release cancelled")
        await tx.audit(actor, "advisory.cancel", subject_of(svc.adv.prefix, number),
                       {"embargo_at": adv.embargo_at.isoformat()})
    # The public must not go on reading a planned instant that no longer holds.
    await svc.index.write(svc.store)


async def reschedule(svc: Advisories, number: int, when: datetime, actor: str) -> int:
    """Move the instant. A version already pre-disclosed is superseded by K+1 saying so."""
    now = svc.clock.now()
    at = whole_minute(when)
    if at <= now:
        raise Refused("the new instant is in the past; use release-now")
    adv, cur = await svc.load(number)
    if adv.state not in OPEN:
        raise Refused(f"advisory {number} is {adv.state.value}")
    doc = replace(svc.doc(adv, cur), embargo_at=at)
    moved = f"Public release moved to {at:%Y-%m-%d %H:%M} UTC."
    if cur.predisclosed_at is not None:
        doc = replace(doc, version=cur.version + 1, updates=(moved,))
    pre, pub = await svc.render(doc, released=False, embargoed_copy=True, now=now)
    fan = None
    if cur.predisclosed_at is not None and pre is not None:
        fan = await fanout.predisclosure(svc.r, doc, pre,
                                         await svc.embargo_audience(adv.case_id),
                                         case_id=adv.case_id, now=now)
    state = adv.state
    if svc.adv.two_person_rule and state is AdvisoryState.SCHEDULED:
        state = AdvisoryState.AWAITING_CONFIRMATION  # a moved instant needs a new second person
    subject = subject_of(svc.adv.prefix, number)
    async with svc.store.unit() as tx:
        await svc.locked(tx, adv)
        await ops.set_fields(tx, number, OPEN, embargo_at=at, state=state.value,
                             schedule_sequence=adv.schedule_sequence + 1)
        # Rows built for the old instant must never go: cancelled in this transaction.
        await staging.invalidate(tx, svc, number, f"instant moved to {at.isoformat()}")
        if fan is None:
            await ops.replace_rendering(tx, number, cur.version, predisclosure_raw=pre,
                                        public_raw=pub, embargo_at=at, doc=doc_to_json(doc))
        else:
            await ops.add_version(tx, VersionRow(number, doc.version, doc_to_json(doc), pre,
                                                 pub, at, None, tx.now, actor))
            await fanout.enqueue(tx, svc.r, fan, subject)
            await ops.mark_predisclosed(tx, number, doc.version, tx.now)
        await tx.audit(actor, "advisory.reschedule", subject,
                       {"from": adv.embargo_at.isoformat(), "to": at.isoformat(),
                        "version": doc.version, "state": state.value})
    await staging.stage(svc, number, actor)
    await svc.index.write(svc.store)
    return doc.version


async def release_now(svc: Advisories, number: int, reason: str, actor: str) -> list[int]:
    """Embargo broken or exploited in the wild: public at once, the reason in a NOTE."""
    if not reason.strip():
        raise UsageError("--reason is required")
    now = svc.clock.now()
    at = whole_minute(now)
    adv, cur = await svc.load(number)
    if adv.state not in OPEN:
        raise Refused(f"advisory {number} is {adv.state.value}")
    base = svc.doc(adv, cur)
    doc = replace(base, embargo_at=at, sections={**base.sections, EARLY_NOTE: reason.strip()})
    _, pub = await svc.render(doc, released=False, embargoed_copy=False, now=now)
    subject = subject_of(svc.adv.prefix, number)
    async with svc.store.unit() as tx:
        await svc.locked(tx, adv)
        await ops.replace_rendering(tx, number, cur.version,
                                    predisclosure_raw=cur.predisclosure_raw, public_raw=pub,
                                    embargo_at=at, doc=doc_to_json(doc))
        await ops.set_fields(tx, number, OPEN, embargo_at=at,
                             state=AdvisoryState.SCHEDULED.value,
                             schedule_sequence=adv.schedule_sequence + 1)
        await staging.invalidate(tx, svc, number, "released early with a new text")
        await tx.audit(actor, "advisory.release_now", subject,
                       {"reason": reason, "planned": adv.embargo_at.isoformat()})
        await raise_alert(tx, svc.r.cfg, "advisory-released-early",
                          f"{subject} released now by {actor}: {reason.strip()}"[:180],
                          {"advisory": subject, "planned": adv.embargo_at.isoformat()})
    released = await svc.dispatcher.dispatch(svc.clock.now())
    if number not in released and (await svc.load(number))[0].state is AdvisoryState.RELEASED:
        # The daemon's own release loop claimed it first: released all the same, once.
        released.append(number)
    return released


async def show(svc: Advisories, number: int, *, version: int | None = None,
               public: bool = False) -> bytes:
    _, cur = await svc.load(number)
    async with svc.store.unit() as tx:
        v = cur if version is None else await ops.get_version(tx, number, version)
    if public:
        return v.public_raw
    if v.predisclosure_raw is None:
        raise Refused(f"version {v.version} was made after the release; use --public")
    return v.predisclosure_raw


async def status(svc: Advisories, number: int) -> list[dict[str, Any]]:
    """Per recipient and version: accepted, deferred (with the reply), failed, held..."""
    async with svc.store.unit() as tx:
        await ops.get(tx, number)
        rows = await ops.deliveries(tx, fanout.key_prefix(svc.adv.prefix, number))
    out = []
    for key, item in rows:
        _, _, version, kind = key.split(":")
        out.append({"version": int(version[1:]), "kind": kind.split("@")[0],
                    "recipient": item.recipient,
                    "audience": item.audience.value,
                    "status": status_label(item.state, item.attempts),
                    "attempts": item.attempts, "reply": item.last_reply or ""})
    return out


async def report(svc: Advisories, number: int) -> list[AuditEntry]:
    """What was decided during the embargo, in order, for publication after it."""
    subject = subject_of(svc.adv.prefix, number)
    entries = await svc.store.audit_listing(subject=subject, limit=10_000)
    return [e for e in entries if not e.action.endswith(".dry_run")] + [
        e for e in await svc.store.audit_listing(action_prefix="alert.", limit=10_000)
        if e.detail.get("advisory") == subject]
