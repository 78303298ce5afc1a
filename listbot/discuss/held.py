"""Held posts of the discuss list: hold, ask every moderator, carry out decisions.

A hold stores the post with its reasons and mails each moderator a request whose
reply address carries a token issued by listbot.decisions for that moderator and
that post. A decision - by signed reply (moderation.replies.DecisionReplies), by the shell
(listbot held ...) - goes through the same first-wins claim and `carry_out`.
`dispatch(now)` sends reminders before expiry and notes expiries; an expired post
stays held and listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from listbot.core.clock import Clock
from listbot.core.config import Config, ListConfig
from listbot.core.errors import ConfigError
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.received import list_reply_target, original_message_id, original_subject
from listbot.core.mail.view import MessageView
from listbot.core.model import Audience, Inbound, OutgoingMessage
from listbot.core.outbox.alerts import raise_alert
from listbot.core.outbox.reply_rate import within_reply_rate
from listbot.core.store import Store, Tx
from listbot.core.store import inbound as inbound_ops
from listbot.core.store import moderation as held_ops
from listbot.core.store.moderation import HeldPost
from listbot.core.worker import Effects
from listbot.discuss.distribution import distribute
from listbot.discuss.sealing import PostSealer
from listbot.moderation import decisions
from listbot.moderation.classify import Verdict
from listbot.moderation.config import ModerationConfig
from listbot.moderation.decisions import AlreadyDecided, Decided, Reply
from listbot.moderation.notices import (
    NOTICE_TEMPLATES,
    RequestFacts,
    answer_to_decider,
    bounces,
    moderation_request,
    rejection_notice,
)
from listbot.moderation.replies import ItemKind
from listbot.moderation.rule_files import load_rules
from listbot.moderation.rules import RuleSet

log = structlog.get_logger("listbot.moderation")

KIND = "held-post"
VERBS = ("approve", "reject", "discard")
HELD_POSTS = ItemKind(KIND, VERBS, noun="Held post", action="moderation", subject="held")
STATES = {"approve": "approved", "reject": "rejected", "discard": "discarded"}


@dataclass(frozen=True)
class Request:
    moderator: str
    token: str
    raw: bytes


class Moderation:
    """Held posts of one list; decided by reply through moderation.replies."""

    item_kind = HELD_POSTS

    def __init__(self, *, cfg: Config, lc: ListConfig, mc: ModerationConfig, pgp: PgpConfig,
                 store: Store, clock: Clock, keyring: Keyring | None) -> None:
        self.cfg, self.lc, self.mc, self.pgp = cfg, lc, mc, pgp
        self.store, self.clock, self.keyring = store, clock, keyring
        self.authority = decisions.authority(cfg, lc)

    # --- holding -----------------------------------------------------------------
    async def requests(self, facts: RequestFacts, raw: bytes) -> tuple[list[Request], list[str]]:
        """One request per moderator (slow: may encrypt); and who could not be asked, why."""
        made: list[Request] = []
        missing: list[str] = []
        for moderator, fpr in sorted(self.authority.deciders.items()):
            if self.mc.encrypt_requests and fpr is None:
                missing.append(f"{moderator}: no registered key")
                continue
            token = decisions.new_reply_token()
            try:
                mail = await moderation_request(
                    lc=self.lc, facts=facts, held_raw=raw, moderator=moderator, token=token,
                    signed=self.authority.require_signature, now=self.clock.now(),
                    encrypt_to=fpr if self.mc.encrypt_requests else None,
                    keyring=self.keyring)
            except Exception as exc:  # an unusable key must not lose the hold
                missing.append(f"{moderator}: {type(exc).__name__}")
                continue
            made.append(Request(moderator, token, mail))
        return made, missing

    async def hold(self, msg: Inbound, sender: str, verdict: Verdict) -> Effects:
        headers = msg.view.header_message
        subject = original_subject(headers)
        expires = self.clock.now() + self.mc.hold_expiry
        facts = RequestFacts(msg.id, sender, subject, verdict.rule, verdict.reason,
                             verdict.hits, expires)
        made, missing = await self.requests(facts, msg.raw)
        return Effects.call(self._store_hold, msg, sender, verdict, expires=expires,
                            made=made, missing=missing)

    async def _store_hold(self, tx: Tx, msg: Inbound, sender: str, verdict: Verdict, *,
                          expires: datetime, made: list[Request], missing: list[str]) -> None:
        """The held post, its requests to the moderators and an alert for who was not
        asked, in the message's transaction."""
        headers = msg.view.header_message
        subject = original_subject(headers)
        await held_ops.insert_held(
            tx, post_id=msg.id, list_name=self.lc.name, sender=sender,
            subject=subject, message_id=original_message_id(headers), raw=msg.raw,
            rule=verdict.rule, reason=verdict.reason, hits=verdict.hits, now=tx.now,
            expires_at=expires)
        await self._send_requests(tx, msg.id, made, expires)
        await tx.audit("listbot", "moderation.hold", f"held:{msg.id}",
                       {"rule": verdict.rule, "reason": verdict.reason,
                        "hits": list(verdict.hits), "sender": sender,
                        "requests": [r.moderator for r in made]})
        if missing:
            await raise_alert(tx, self.cfg, "moderation_request_not_sent",
                              f"held post {msg.id}: some moderators were not asked",
                              {"list": self.lc.name, "problems": "; ".join(missing)})

    async def _send_requests(self, tx: Tx, post_id: int, made: list[Request],
                             expires: datetime) -> None:
        for req in made:
            issued = await decisions.issue(tx, kind=KIND, item_id=str(post_id),
                                           list_name=self.lc.name, issued_to=req.moderator,
                                           expires_at=expires, token=req.token)
            await tx.enqueue(OutgoingMessage(
                audience=Audience.TEAM, envelope_from=bounces(self.lc),
                recipients=(req.moderator,), raw=req.raw, list_name=self.lc.name,
                reason="moderation.request"))
            await tx.audit("listbot", "moderation.request", f"held:{post_id}",
                           {"moderator": req.moderator, "token_id": issued.token_id,
                            "expires_at": expires.isoformat()})

    # --- deciding ------------------------------------------------------------------
    async def carry_out(self, tx: Tx, post: HeldPost, decided: Decided, via: str) -> None:
        """What a won decision does to the post, in the deciding transaction."""
        state = STATES[decided.verb]
        if not await held_ops.settle(tx, post.id, state):
            raise LookupError(f"held post {post.id} is no longer held")
        raw = await held_ops.get_raw(tx, post.id) or b""
        detail: dict[str, object] = {"via": via, "token_id": decided.token_id,
                                     "reason": decided.reason, "rule": post.rule}
        if decided.verb == "approve":
            post_view = MessageView.parse(raw)
            poster = post_view.sender
            if poster is None:
                raise LookupError(f"held post {post.id} has no usable From")
            # Approvals are rare: sealing inside the deciding transaction keeps the
            # decision and the (encrypted) distribution one atomic step.
            sent = await distribute(tx, self.cfg, self.lc, post_view, poster=poster,
                                    hits=post.hits,
                                    sealer=PostSealer.from_config(self.pgp, self.keyring),
                                    subject=f"held:{post.id}")
            if sent.sealed is not None:
                detail["encrypted"] = True
            detail["recipients"] = sent.recipients
        elif decided.verb == "reject":
            detail.update(await self._notify_rejected(tx, post, raw, decided.reason))
        await tx.audit(decided.decider, f"moderation.{decided.verb}", f"held:{post.id}", detail)

    async def _notify_rejected(self, tx: Tx, post: HeldPost, raw: bytes,
                               why: str) -> dict[str, object]:
        """The poster's notice, under the same RFC 3834 rules and rate limit as every
        other notice: a held auto-reply or bounce must not be answered
        (docs/design.md "No loops, no backscatter")."""
        envelope = await inbound_ops.envelope_sender(tx, post.inbound_id)
        target = list_reply_target(self.lc, MessageView.parse(raw).header_message, envelope)
        no_reply, to = target.reason, target.address
        if to is not None and not await within_reply_rate(tx, self.cfg, to):
            no_reply = "rate limit"
        if no_reply is not None or to is None:
            return {"notice": None, "no_reply_reason": no_reply}
        template = why if why in NOTICE_TEMPLATES else "moderator"
        reason = "" if why in NOTICE_TEMPLATES else why
        await tx.enqueue(rejection_notice(
            cfg=self.cfg, lc=self.lc, mc=self.mc, to=to, subject=post.subject,
            message_id=post.message_id, template=template, reason=reason, now=tx.now))
        return {"notice": template, "no_reply_reason": None}

    def answer(self, *, to: str, item_id: str, text: str, now: datetime) -> OutgoingMessage:
        return answer_to_decider(lc=self.lc, to=to, text=text, now=now, post_id=item_id)

    async def refused(self, tx: Tx, reply: Reply) -> bool:
        return False  # a held post can always be decided; the claim says who was first

    async def carry_out_reply(self, tx: Tx, reply: Reply, decided: Decided, via: str) -> None:
        post = await held_ops.get(tx, int(reply.item_id))
        assert post is not None
        await self.carry_out(tx, post, decided, via)

    async def decide_now(self, tx: Tx, post_id: int, *, decider: str, verb: str,
                         reason: str, via: str) -> Decided | AlreadyDecided:
        """A decision without a token (the shell): same claim, same effects."""
        post = await held_ops.get(tx, post_id)
        if post is None or post.list_name != self.lc.name:
            raise LookupError(f"no held post {post_id} on {self.lc.name}")
        result = await decisions.decide(tx, kind=KIND, item_id=str(post_id), decider=decider,
                                        verb=verb, reason=reason)
        if isinstance(result, Decided):
            await self.carry_out(tx, post, result, via)
        return result

    # --- reminders and expiry -------------------------------------------------------
    async def dispatch(self, now: datetime) -> datetime | None:
        """Send due reminders, note expiries; returns when to be woken next."""
        name, before = self.lc.name, self.mc.reminder_before
        async with self.store.read() as tx:
            due = await held_ops.due_reminders(tx, name, now, before)
            expired = await held_ops.due_expiries(tx, name, now)
            raws = {p.id: await held_ops.get_raw(tx, p.id) or b"" for p in due}
        for post in due:
            await self._remind(post, raws[post.id])
        for post in expired:
            await self._note_expiry(post)
        async with self.store.read() as tx:
            return await held_ops.next_due(tx, name, before)

    async def _remind(self, post: HeldPost, raw: bytes) -> None:
        facts = RequestFacts(post.id, post.sender, post.subject, post.rule, post.reason,
                             post.hits, post.expires_at, reminder=True)
        made, _ = await self.requests(facts, raw)
        async with self.store.unit() as tx:
            if not await held_ops.mark(tx, post.id, "reminded_at", tx.now):
                return  # another daemon reminded first: its transaction sent the mail
            await self._send_requests(tx, post.id, made, post.expires_at)
            await tx.audit("listbot", "moderation.reminder", f"held:{post.id}",
                           {"moderators": [r.moderator for r in made]})

    async def _note_expiry(self, post: HeldPost) -> None:
        async with self.store.unit() as tx:
            if not await held_ops.mark(tx, post.id, "expired_noted_at", tx.now):
                return
            await raise_alert(tx, self.cfg, "held_post_expired",
                              f"held post {post.id} on {self.lc.name} expired undecided",
                              {"post": post.id, "rule": post.rule,
                               "hint": f"listbot held approve|reject|discard {post.id}"})


async def dispatch_held(moderations: Iterable[Moderation], now: datetime,
                        backstop: timedelta) -> timedelta:
    """Reminders and expiries of every moderated list; how long until the next is due.

    At most `backstop`, so holds made since this pass are seen without another
    trigger; at least a second, so a faked clock never makes the caller spin."""
    upcoming = [await m.dispatch(now) for m in moderations]
    due = min((t for t in upcoming if t is not None), default=now + backstop)
    return min(max(due - now, timedelta(seconds=1)), backstop)


def load_checked_rules(directory: Path) -> RuleSet:
    """load_rules, plus: every notice a rule names must be a template listbot has."""
    ruleset = load_rules(directory)
    problems: list[str] = []
    for lr in ruleset.lists:
        outcomes = [(f"rule[{i}] ({r.name}).notice", r.outcome) for i, r in enumerate(lr.rules)]
        outcomes.append(("list.default.notice", lr.default))
        for path, outcome in outcomes:
            if outcome.notice is not None and outcome.notice not in NOTICE_TEMPLATES:
                problems.append(f"{lr.source}: {path}: unknown notice template "
                                f"{outcome.notice!r} (known: {sorted(NOTICE_TEMPLATES)})")
    if problems:
        raise ConfigError(problems)
    return ruleset
