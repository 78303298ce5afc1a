"""Who gets which copy of an advisory, as outbox rows.

Every row carries `dedupe_key` = (advisory, version, kind) so a second enqueue
for the same recipient is a no-op: one delivery per (version, recipient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from listbot.advisories.doc import AdvisoryDoc
from listbot.advisories.doc import Audience as Rendering
from listbot.advisories.mail import dated
from listbot.advisories.render import Renderer
from listbot.core.mail.outbound import rewrite
from listbot.core.mail.sealing import copy_tag, seal_for_members
from listbot.core.model import Audience, Member, OutgoingMessage
from listbot.core.outbox.alerts import raise_alert
from listbot.core.store import Tx


def key_prefix(prefix: str, number: int) -> str:
    return f"adv:{prefix}-{number}:"


def dedupe_key(prefix: str, number: int, version: int, kind: str) -> str:
    return f"{key_prefix(prefix, number)}v{version}:{kind}"


def public_key(prefix: str, number: int, version: int, instant: datetime) -> str:
    """Public rows are keyed by the instant too: rows built for an instant that later
    moved can never be mistaken for (or block) the rows built for the new one."""
    return dedupe_key(prefix, number, version, f"public@{instant:%Y%m%dT%H%MZ}")


@dataclass(frozen=True)
class Fanout:
    messages: tuple[OutgoingMessage, ...]
    held: tuple[OutgoingMessage, ...]  # rows without bytes, waiting for a usable key
    refused: tuple[str, ...] = ()  # members whose key gpg refused
    refusal: str = "the public copy goes to it in plaintext"  # what became of their copy


async def predisclosure(r: Renderer, doc: AdvisoryDoc, raw: bytes, members: Sequence[Member],
                        *, case_id: str | None, now: datetime) -> Fanout:
    """Embargoed copies to every member role address plus the team copy. A key gpg
    refuses stops no one else's copy: that member is handled as keyless (`refused`)."""
    key = dedupe_key(doc.prefix, doc.number, doc.version, "predisclosure")
    plan = await seal_for_members(
        raw, members, keyring=r.keyring, pgp=r.pgp, now=now,
        hidden_recipients=r.adv.hidden_recipients,
        message_id_for=lambda a: r.message_id(doc, Rendering.PREDISCLOSURE, copy_tag(a)),
        plain_message_id=r.message_id(doc, Rendering.PREDISCLOSURE), tolerate_refusals=True)
    base = OutgoingMessage(audience=Audience.EMBARGOED, envelope_from=r.cfg.team_address,
                           recipients=(), raw=b"", case_id=case_id, dedupe_key=key,
                           reason="advisory.predisclosure")
    msgs = [replace(base, recipients=c.recipients, raw=c.raw, message_id=c.message_id)
            for c in plan.copies]
    msgs.append(replace(base, audience=Audience.TEAM, recipients=r.cfg.team_recipients,
                        raw=raw, message_id=r.message_id(doc, Rendering.PREDISCLOSURE)))
    held = [replace(base, recipients=(m.address,)) for m in plan.held]
    return Fanout(tuple(msgs), tuple(held), tuple(m.address for m in plan.refused),
                  predisclosure_refusal(r))


def public(r: Renderer, doc: AdvisoryDoc, raw: bytes, members: Sequence[Member],
           not_before: datetime) -> Fanout:
    """The public version to the public lists and every member; never before the instant."""
    key = public_key(doc.prefix, doc.number, doc.version, not_before)
    mid = r.message_id(doc, Rendering.PUBLIC)
    outside = tuple(r.adv.public_lists) + tuple(m.address for m in members)
    base = OutgoingMessage(audience=Audience.PUBLIC, envelope_from=r.cfg.team_address,
                           recipients=outside, raw=raw, not_before=not_before, dedupe_key=key,
                           message_id=mid, reason="advisory.public")
    team = replace(base, audience=Audience.TEAM, recipients=r.cfg.team_recipients,
                   not_before=None)
    return Fanout((base, team), ())


async def public_sealed(r: Renderer, doc: AdvisoryDoc, raw: bytes, members: Sequence[Member],
                        not_before: datetime, *, now: datetime) -> Fanout:
    """As `public`; under `[pgp] require_encryption` each member's copy is ciphertext.

    A member without a usable key gets the plaintext: the text is public at that
    instant, so holding it back would protect nothing. Nor may a key gpg refuses
    hold back the release, for that member or anyone else: it too gets the
    plaintext, and the team is told (`refused`).

    Every copy is dated at the instant it is built for, whenever it was rendered.
    """
    raw = dated(raw, not_before)
    if not r.pgp.require_encryption or not members:
        return public(r, doc, raw, members, not_before)
    lists = public(r, doc, raw, (), not_before)
    plan = await seal_for_members(
        raw, members, keyring=r.keyring, pgp=replace(r.pgp, require_encryption=False),
        now=now, hidden_recipients=r.adv.hidden_recipients,
        message_id_for=lambda a: r.message_id(doc, Rendering.PUBLIC, copy_tag(a)),
        plain_message_id=r.message_id(doc, Rendering.PUBLIC), tolerate_refusals=True)
    base = lists.messages[0]
    copies = [replace(base, recipients=c.recipients, raw=c.raw, message_id=c.message_id)
              for c in plan.copies]
    return Fanout((*lists.messages, *copies), (), tuple(m.address for m in plan.refused))


def dry_run(r: Renderer, fan: Fanout, plain: bytes, what: str) -> OutgoingMessage:
    """The exact plaintext bytes, to the team only, saying whom they would have reached."""
    outside = [m for m in fan.messages if m.audience is not Audience.TEAM]
    total = sum(len(m.recipients) for m in outside) + sum(len(m.recipients) for m in fan.held)
    sealed = sum(len(m.recipients) for m in outside if m.raw is not plain)
    note = (f"{what}; would go to {total} recipient(s), {sealed} encrypted, "
            f"{len(fan.held)} held for want of a key")
    return OutgoingMessage(
        audience=Audience.TEAM, envelope_from=r.cfg.team_address,
        recipients=r.cfg.team_recipients,
        raw=rewrite(plain, [("X-Listbot-Dry-Run", note)], drop=frozenset()),
        reason=f"advisory.dry_run.{what}")


async def enqueue(tx: Tx, r: Renderer, fan: Fanout, subject: str) -> int:
    """Write every row in the caller's transaction; held rows alert the team."""
    count = 0
    for msg in fan.messages:
        count += len(await tx.enqueue(msg))
    for msg in fan.held:
        ids = await tx.enqueue(msg)
        await tx.hold(ids)
        if ids:
            await raise_alert(tx, r.cfg, "advisory-held",
                              f"{subject}: no usable key for {msg.recipients[0]}; "
                              "nothing sent to it until resolved",
                              {"advisory": subject, "recipient": msg.recipients[0]})
    await alert_refused(tx, r, fan, subject)
    return count


async def alert_refused(tx: Tx, r: Renderer, fan: Fanout, subject: str) -> None:
    """One alert naming every member whose key gpg refused (in the caller's transaction)."""
    if fan.refused:
        await raise_alert(tx, r.cfg, "advisory-key-refused",
                          f"{subject}: gpg refused the key of {', '.join(fan.refused)}; "
                          f"{fan.refusal}",
                          {"advisory": subject, "recipients": list(fan.refused)})


def predisclosure_refusal(r: Renderer) -> str:
    """What happens to an embargoed copy whose key gpg refused: what [pgp] says."""
    if r.pgp.require_encryption:
        return "its pre-disclosure copy waits for a usable key (advisory resolve-held)"
    return "its pre-disclosure copy goes in plaintext, as [pgp] allows"
