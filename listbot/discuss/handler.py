"""The members-only discuss list: verify the sender, decide, distribute or answer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.message import EmailMessage
from functools import cached_property

import structlog

from listbot.core.clock import Clock
from listbot.core.config import Config, ListConfig
from listbot.core.mail.address import Mailbox
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.outbound import mailbox, new_message_id, plain_message
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_mime import verify_view
from listbot.core.mail.received import list_reply_target, original_message_id, original_subject
from listbot.core.mail.view import MessageView
from listbot.core.model import Audience, Inbound, Member, OutgoingMessage
from listbot.core.outbox.reply_rate import within_reply_rate
from listbot.core.store import Store, Tx
from listbot.core.worker import Effects
from listbot.discuss.distribution import Distribution, prepare_distribution
from listbot.discuss.held import Moderation
from listbot.discuss.sealing import PostSealer
from listbot.moderation.classify import Verdict, classify
from listbot.moderation.facts import facts_from_view
from listbot.moderation.notices import rejection_notice
from listbot.moderation.rules import Action, Role, RuleSet

log = structlog.get_logger("listbot.discuss")

class RuleBook:
    """The rules in force; a reload builds new handlers with a new book (app.Serving)."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset


class DiscussHandler:
    batchable = True  # each post is decided on its own

    def __init__(self, *, cfg: Config, lc: ListConfig, pgp: PgpConfig, store: Store,
                 clock: Clock, rulebook: RuleBook | None = None,
                 moderation: Moderation | None = None, keyring: Keyring | None = None) -> None:
        self.cfg = cfg
        self.lc = lc
        self.pgp = pgp
        self.store = store
        self.clock = clock
        self.rulebook = rulebook or RuleBook(RuleSet(()))
        self.moderation = moderation
        self.keyring = keyring
        self.team = {m.address: m.fingerprint for m in cfg.team_members}
        self._cycle_members: list[dict[str, Member]] | None = None  # [] inside cycle()

    async def decide(self, msg: Inbound) -> Effects:
        headers = msg.view.header_message
        if msg.view.is_own_loop(self.lc.address):
            return Effects.audit_only(msg, "discuss.loop_discarded",
                                      {"reason": "carries our own X-Loop"})
        sender = msg.view.sender
        members = await self._members()
        role = self._role(sender, members)
        if sender is None or role is Role.NONMEMBER:
            return self._nonmember(msg, headers, sender)
        verdict = await self.verdict(msg, sender, role, members)
        log.info("discuss.verdict", inbound_id=msg.id, action=verdict.action.value,
                 rule=verdict.rule, hits=list(verdict.hits))
        if verdict.action is Action.APPROVE:
            return await self._distribute(msg, sender, verdict, members)
        if verdict.action is Action.HOLD and self.moderation is not None:
            return await self.moderation.hold(msg, sender.normalized, verdict)
        if verdict.action is Action.REJECT:
            return self._rejected(msg, headers, verdict)
        return Effects.audit_only(msg, f"discuss.{verdict.action.value}",
                                  {"reason": verdict.reason, "rule": verdict.rule,
                                   "hits": list(verdict.hits)})

    @contextmanager
    def cycle(self) -> Iterator[None]:
        """A run of posts the worker commits together reads the roster once. A roster
        change committed meanwhile is as if committed just after the run; the delivery
        gate re-checks membership on its own fresh read before any copy leaves."""
        self._cycle_members = []
        try:
            yield
        finally:
            self._cycle_members = None

    async def _members(self) -> dict[str, Member]:
        if self._cycle_members:
            return self._cycle_members[0]
        members = {m.address: m for m in await self.store.members()}
        if self._cycle_members is not None:
            self._cycle_members.append(members)
        return members

    def _role(self, sender: Mailbox | None, members: Mapping[str, Member]) -> Role:
        if sender is None:
            return Role.NONMEMBER
        if sender.normalized in self.lc.moderators:
            return Role.MODERATOR
        if sender.normalized in self.team:
            return Role.TEAM
        return Role.MEMBER if sender.normalized in members else Role.NONMEMBER

    async def verdict(self, msg: Inbound, sender: Mailbox, role: Role,
                     members: Mapping[str, Member]) -> Verdict:
        """The list's rules on the message facts; no rules loaded means hold."""
        rules = self.rulebook.ruleset.get(self.lc.name)
        if rules is None:
            return Verdict(Action.HOLD, "no-rules", "no rules loaded for this list", None, ())
        member = members.get(sender.normalized)
        fpr = self.team.get(sender.normalized) or (member.fingerprint if member else None)
        signed = await self._signed_by(msg.view, fpr)
        facts = facts_from_view(msg.view, sender_role=role, signed_by_sender=signed)
        return classify(facts, rules)

    async def _signed_by(self, view: MessageView, fingerprint: str | None) -> bool:
        # gpg only runs for mail that looks signed: most posts are not.
        if (fingerprint is None or self.keyring is None
                or b"-----BEGIN PGP SIGNATURE" not in view.raw):
            return False
        verification = await verify_view(view, self.keyring, [fingerprint], self.clock.now())
        return verification.valid

    @cached_property
    def sealer(self) -> PostSealer | None:
        """Member copies as ciphertext under `[pgp] require_encryption` (discuss_crypto)."""
        return PostSealer.from_config(self.pgp, self.keyring)

    async def _distribute(self, msg: Inbound, poster: Mailbox, verdict: Verdict,
                          members: Mapping[str, Member]) -> Effects:
        # gpg, when the list seals, runs here: before the transaction
        prepared = await prepare_distribution(
            self.cfg, self.lc, msg.view, poster=poster, hits=verdict.hits,
            members=list(members.values()), sealer=self.sealer, now=self.clock.now())
        return Effects.call(self._enqueue_approved, msg, poster, verdict, prepared)

    async def _enqueue_approved(self, tx: Tx, msg: Inbound, poster: Mailbox, verdict: Verdict,
                                prepared: Distribution) -> None:
        await prepared.enqueue(tx, self.cfg, f"inbound:{msg.id}")
        sealed = prepared.sealed
        await tx.audit("listbot", "discuss.approve", f"inbound:{msg.id}",
                       {"rule": verdict.rule, "hits": list(verdict.hits),
                        "poster": poster.normalized, "recipients": prepared.recipients,
                        "encrypted": sealed is not None,
                        "held": len(sealed.held) if sealed else 0})

    def _rejected(self, msg: Inbound, headers: EmailMessage, verdict: Verdict) -> Effects:
        """Rejected by a rule: the poster gets the rule's notice (rate-limited, RFC 3834)."""
        target = list_reply_target(self.lc, headers, msg.envelope_sender)
        no_reply, to = target.reason, target.address or ""
        notice = None
        if to and self.moderation is not None:
            notice = rejection_notice(
                cfg=self.cfg, lc=self.lc, mc=self.moderation.mc, to=to,
                subject=original_subject(headers), message_id=original_message_id(headers),
                template=verdict.notice or "moderator", reason=verdict.reason,
                now=self.clock.now())
        return Effects.call(self._reject, msg, verdict, to=to, notice=notice,
                            no_reply=no_reply)

    async def _reject(self, tx: Tx, msg: Inbound, verdict: Verdict, *, to: str,
                      notice: OutgoingMessage | None, no_reply: str | None) -> None:
        sent = notice is not None and await within_reply_rate(tx, self.cfg, to)
        if sent and notice is not None:
            await tx.enqueue(notice)
        await tx.audit("listbot", "discuss.reject", f"inbound:{msg.id}",
                       {"rule": verdict.rule, "reason": verdict.reason,
                        "hits": list(verdict.hits), "notice": verdict.notice,
                        "sent": sent, "no_reply_reason": no_reply})

    def _bounces(self) -> str:
        return f"{self.lc.local_part}-bounces@{self.lc.domain}"

    def _nonmember(self, msg: Inbound, headers: EmailMessage, sender: Mailbox | None) -> Effects:
        who = sender.normalized if sender else "(unparsable From)"
        target = list_reply_target(self.lc, headers, msg.envelope_sender)
        notice = None if target.address is None else self._rejection_notice(
            target.address, headers)
        return Effects.call(self._reject_nonmember, msg, who, notice, target.reason)

    async def _reject_nonmember(self, tx: Tx, msg: Inbound, who: str,
                                notice: OutgoingMessage | None, no_reply: str | None) -> None:
        sent = False
        to = notice.recipients[0] if notice is not None else ""
        if notice is not None and await within_reply_rate(tx, self.cfg, to):
            await tx.enqueue(notice)
            sent = True
        await tx.audit("listbot", "discuss.reject_nonmember", f"inbound:{msg.id}",
                       {"sender": who, "notice": sent, "no_reply_reason": no_reply})

    def _rejection_notice(self, to: str, headers: EmailMessage) -> OutgoingMessage:
        # No quotation of the post, not even its subject: the envelope sender this goes
        # to need not be its writer, and the post may carry embargoed text. In-Reply-To
        # threads it for the writer.
        text = (
            f"Your message to {self.lc.address} was not distributed.\n\n"
            "Only the registered role addresses of member organisations may post to\n"
            f"this list. If you want to reach the security team, write to\n"
            f"{self.cfg.team_address}.\n"
        )
        extra = [("Auto-Submitted", "auto-replied"), ("X-Loop", self.lc.address)]
        if (mid := original_message_id(headers)) is not None:
            extra += [("In-Reply-To", mid), ("References", mid)]
        raw = plain_message(
            sender=mailbox(self.lc.display_name, self._bounces()), to=[to],
            subject=f"Not distributed: your message to {self.lc.address}", text=text,
            domain=self.lc.domain, date=self.clock.now(), extra=extra,
            message_id=new_message_id(self.lc.domain))
        return OutgoingMessage(audience=Audience.NOTICE, envelope_from="", recipients=(to,),
                               raw=raw, list_name=self.lc.name, reason="discuss.nonmember")
