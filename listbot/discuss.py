"""The members-only discuss list: verify the sender, decide, distribute or answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from functools import cached_property

import structlog

from listbot.clock import Clock
from listbot.config import Config, ListConfig
from listbot.discuss_crypto import PostSealer, enqueue_sealed
from listbot.mailsafe import Mailbox, safe_header_value, sender_of, should_not_autoreply
from listbot.model import Audience, Inbound, OutgoingMessage
from listbot.outbound import mailbox, new_message_id, plain_message, rewrite
from listbot.store import Store, Tx
from listbot.worker import Effects

log = structlog.get_logger("listbot.discuss")

MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


def parse_headers(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=default_policy).parsebytes(raw, headersonly=True)
    assert isinstance(msg, EmailMessage)
    return msg


def original_message_id(msg: EmailMessage) -> str | None:
    """The Message-ID only if it is a plain <id@host>: it ends up in our headers."""
    try:
        value = str(msg.get("Message-ID", "")).strip()
    except Exception:
        return None
    return value if MESSAGE_ID.fullmatch(value) else None


def original_subject(msg: EmailMessage) -> str:
    try:
        return safe_header_value(str(msg.get("Subject", "")))[:200]
    except Exception:
        return ""


def distribution_headers(lc: ListConfig, poster: Mailbox, hits: Sequence[str],
                         help_address: str) -> list[tuple[str, str]]:
    name = poster.display_name or poster.local
    help_target = f"<{lc.help_url}>" if lc.help_url else f"<mailto:{help_address}>"
    return [
        ("From", mailbox(f"{name} via {lc.display_name}", lc.address)),
        ("Reply-To", mailbox(poster.display_name, poster.addr_spec)),
        ("X-Original-From", poster.addr_spec),
        ("List-Id", f"{lc.display_name} <{lc.list_id}>"),
        ("List-Post", f"<mailto:{lc.address}>"),
        ("List-Help", help_target),
        ("Precedence", "list"),
        ("X-Loop", lc.address),
        ("X-Listbot-Rule-Hits", ", ".join(hits) or "none"),
    ]


@dataclass(frozen=True)
class Decision:
    action: str  # approve, reject, hold, discard
    rule: str
    reason: str
    hits: tuple[str, ...] = ()


class DiscussHandler:
    batchable = True  # each post is decided on its own

    def __init__(self, *, cfg: Config, lc: ListConfig, store: Store, clock: Clock) -> None:
        self.cfg = cfg
        self.lc = lc
        self.store = store
        self.clock = clock

    async def handle(self, msg: Inbound) -> Effects:
        headers = parse_headers(msg.raw)
        if self._is_own_loop(headers):
            return self._audit_only(msg, "discuss.loop_discarded", "carries our own X-Loop")
        sender = sender_of(headers)
        members = {m.address for m in await self.store.members()}
        if sender is None or sender.normalized not in members:
            return self._nonmember(msg, headers, sender)
        decision = await self.decide(msg, headers, sender)
        if decision.action == "approve":
            return await self._distribute(msg, sender, decision, sorted(members))
        return self._audit_only(msg, f"discuss.{decision.action}", decision.reason)

    async def decide(self, msg: Inbound, headers: EmailMessage, sender: Mailbox) -> Decision:
        """Members' posts are approved until moderation rules decide otherwise."""
        return Decision("approve", "member", "sender is a member", ("member",))

    def _is_own_loop(self, headers: EmailMessage) -> bool:
        try:
            loops = [str(v).strip().lower() for v in headers.get_all("X-Loop", [])]
        except Exception:
            return False
        return self.lc.address in loops

    @cached_property
    def sealer(self) -> PostSealer | None:
        """Member copies as ciphertext under `[pgp] require_encryption` (discuss_crypto)."""
        return PostSealer.from_config(self.cfg)

    async def _distribute(self, msg: Inbound, poster: Mailbox, decision: Decision,
                          recipients: list[str]) -> Effects:
        raw = rewrite(msg.raw, distribution_headers(self.lc, poster, decision.hits,
                                                    self.cfg.team_address))
        out = OutgoingMessage(audience=Audience.EMBARGOED, envelope_from=self._bounces(),
                              recipients=tuple(recipients), raw=raw, list_name=self.lc.name,
                              reason="discuss.post")
        sealed = None
        if self.sealer is not None:  # gpg runs here, before the transaction
            mid = original_message_id(parse_headers(msg.raw)) or new_message_id(self.lc.domain)
            sealed = await self.sealer.seal(out, await self.store.members(), self.lc, mid,
                                            self.clock.now())

        async def effects(tx: Tx) -> None:
            if sealed is None:
                await tx.enqueue(out)
            else:
                await enqueue_sealed(tx, self.cfg, out, sealed, f"inbound:{msg.id}")
            await tx.audit("listbot", "discuss.approve", f"inbound:{msg.id}",
                           {"rule": decision.rule, "hits": list(decision.hits),
                            "poster": poster.normalized, "recipients": len(recipients),
                            "encrypted": sealed is not None,
                            "held": len(sealed.held) if sealed else 0})
        return effects

    def _bounces(self) -> str:
        return f"{self.lc.local_part}-bounces@{self.lc.domain}"

    def _audit_only(self, msg: Inbound, action: str, reason: str) -> Effects:
        async def effects(tx: Tx) -> None:
            await tx.audit("listbot", action, f"inbound:{msg.id}", {"reason": reason})
        return effects

    def _nonmember(self, msg: Inbound, headers: EmailMessage, sender: Mailbox | None) -> Effects:
        who = sender.normalized if sender else "(unparsable From)"
        no_reply = should_not_autoreply(headers, own_list_ids=[self.lc.list_id],
                                        own_loop=self.lc.address,
                                        envelope_sender=msg.envelope_from or None)
        notice = None if no_reply else self._rejection_notice(msg, headers)

        async def effects(tx: Tx) -> None:
            sent = False
            if notice is not None and await self._within_rate(tx, notice.recipients[0]):
                await tx.enqueue(notice)
                sent = True
            await tx.audit("listbot", "discuss.reject_nonmember", f"inbound:{msg.id}",
                           {"sender": who, "notice": sent, "no_reply_reason": no_reply})
        return effects

    async def _within_rate(self, tx: Tx, address: str) -> bool:
        since = tx.now - timedelta(hours=1)
        return await tx.notices_since(address, since) < self.cfg.reply_rate_per_hour

    def _rejection_notice(self, msg: Inbound, headers: EmailMessage) -> OutgoingMessage | None:
        to = msg.envelope_from.strip().lower()
        if not to or "@" not in to:
            return None
        subject = original_subject(headers)
        text = (
            f"Your message to {self.lc.address} was not distributed.\n\n"
            f"Subject: {subject}\n\n"
            "Only the registered role addresses of member organisations may post to\n"
            f"this list. If you want to reach the security team, write to\n"
            f"{self.cfg.team_address}.\n"
        )
        extra = [("Auto-Submitted", "auto-replied"), ("X-Loop", self.lc.address)]
        if (mid := original_message_id(headers)) is not None:
            extra += [("In-Reply-To", mid), ("References", mid)]
        raw = plain_message(
            sender=mailbox(self.lc.display_name, self._bounces()), to=[to],
            subject=f"Not distributed: {subject}", text=text, domain=self.lc.domain,
            date=self.clock.now(), extra=extra, message_id=new_message_id(self.lc.domain))
        return OutgoingMessage(audience=Audience.NOTICE, envelope_from="", recipients=(to,),
                               raw=raw, list_name=self.lc.name, reason="discuss.nonmember")
