"""Mail that moderation writes: rejection notices, moderation requests, answers to
moderators. Every header value goes through core/mail/safe.py
(docs/design.md "Safe headers and addresses")."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from listbot.core.config import Config, ListConfig
from listbot.core.mail.headers import safe_header_value
from listbot.core.mail.outbound import headers_block, mailbox, new_message_id, plain_message
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_mime import build_encrypted_mime
from listbot.core.model import Audience, OutgoingMessage
from listbot.moderation.config import ModerationConfig

# Notice templates a rule (`notice = "..."`) or a moderator (`reject policy`) may name.
NOTICE_TEMPLATES = frozenset({"policy", "moderator", "off-topic"})


def bounces(lc: ListConfig) -> str:
    return f"{lc.local_part}-bounces@{lc.domain}"


def moderation_address(lc: ListConfig, token: str | None = None) -> str:
    """The list's decision address; with a token, the reply address of one decider
    (short enough for every mail server: checked at load, core/config/addresses.py)."""
    plus = f"+{token}" if token else ""
    return f"{lc.decisions_local}{plus}@{lc.domain}"


def _notice_text(template: str, reason: str, lc: ListConfig, mc: ModerationConfig) -> str:
    if template == "policy":
        lists = ", ".join(mc.public_lists) or "the project's public mailing lists"
        return (
            f"This list is for technical discussion of embargoed advisories only.\n"
            f"Questions about the disclosure policy, embargoes, deployment during an\n"
            f"embargo or list membership go to the security team at\n"
            f"{mc.security_contact}, or, if they are not confidential, to\n{lists}.\n"
        )
    if template == "off-topic":
        return "This list is for technical discussion of embargoed advisories only.\n"
    return f"A moderator of {lc.address} did not distribute it.\n"


def rejection_notice(*, cfg: Config, lc: ListConfig, mc: ModerationConfig, to: str,
                     subject: str, message_id: str | None, template: str, reason: str,
                     now: datetime) -> OutgoingMessage:
    text = (f"Your message to {lc.address} was not distributed.\n\n"
            f"Subject: {safe_header_value(subject)[:200]}\n"
            + (f"Reason: {reason}\n" if reason else "") + "\n"
            + _notice_text(template, reason, lc, mc))
    extra = [("Auto-Submitted", "auto-replied"), ("X-Loop", lc.address)]
    if message_id:
        extra += [("In-Reply-To", message_id), ("References", message_id)]
    raw = plain_message(sender=mailbox(lc.display_name, bounces(lc)), to=[to],
                        subject=f"Not distributed: {safe_header_value(subject)[:200]}",
                        text=text, domain=lc.domain, date=now, extra=extra)
    # It quotes the subject of a member's post to an embargoed list (and a moderator's
    # reason about it), so it may reach only addresses the embargo admits: the envelope
    # sender it goes to need not be the member's role address
    # (docs/design.md "The audience gate").
    return OutgoingMessage(audience=Audience.EMBARGOED, envelope_from="", recipients=(to,),
                           raw=raw, list_name=lc.name, reason=f"moderation.notice.{template}")


@dataclass(frozen=True)
class RequestFacts:
    post_id: int
    sender: str
    subject: str
    rule: str
    reason: str
    hits: tuple[str, ...]
    expires_at: datetime
    reminder: bool = False


def request_text(lc: ListConfig, facts: RequestFacts, token: str, signed: bool) -> str:
    sign = ("Sign your reply with your PGP key (PGP/MIME or inline): unsigned replies\n"
            "are ignored.\n" if signed else "")
    return (
        ("REMINDER: this post is still waiting for a decision.\n\n" if facts.reminder else "")
        + f"A post to {lc.address} is held for moderation (held post {facts.post_id}).\n\n"
        f"From:    {facts.sender}\n"
        f"Subject: {safe_header_value(facts.subject)[:200]}\n"
        f"Rule:    {facts.rule} ({facts.reason})\n"
        f"Rules that matched: {', '.join(facts.hits) or 'none'}\n\n"
        f"Reply to {moderation_address(lc, token)}\n"
        "with exactly one of these as the first line of your reply:\n\n"
        "    approve\n"
        "    reject <reason text, or a notice name: policy, off-topic>\n"
        "    discard\n\n"
        + sign
        + f"This request expires at {facts.expires_at:%Y-%m-%d %H:%M} UTC; after that the\n"
        f"post stays listed (listbot held list) and can be decided from the shell.\n"
        "The held post is attached.\n"
    )


def _mixed(text: str, attachment: bytes, name: str) -> bytes:
    boundary = f"=_held_{secrets.token_hex(12)}"
    b = boundary.encode("ascii")
    body = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    return b"".join((
        b'Content-Type: multipart/mixed; boundary="', b, b'"\r\n\r\n',
        b"--", b, b"\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        body, b"\r\n--", b, b"\r\n",
        b"Content-Type: message/rfc822\r\n",
        b'Content-Disposition: attachment; filename="', name.encode("ascii"), b'"\r\n\r\n',
        attachment, b"" if attachment.endswith(b"\r\n") else b"\r\n",
        b"--", b, b"--\r\n",
    ))  # fmt: skip


async def moderation_request(*, lc: ListConfig, facts: RequestFacts, held_raw: bytes,
                             moderator: str, token: str, signed: bool, now: datetime,
                             encrypt_to: str | None, keyring: Keyring | None) -> bytes:
    """The request to one moderator; encrypted to `encrypt_to` when given."""
    entity = _mixed(request_text(lc, facts, token, signed), held_raw,
                    f"held-{facts.post_id}.eml")
    label = "Reminder: " if facts.reminder else ""
    subject = f"{label}held post {facts.post_id} on {lc.name}"
    if encrypt_to is not None:
        if keyring is None:
            raise ValueError("encryption required but no keyring")
        armored = await keyring.encrypt(entity, [encrypt_to])
        entity = build_encrypted_mime(armored, f"{facts.post_id}:{moderator}:{now}")
    else:
        subject += f": {safe_header_value(facts.subject)[:150]}"
    head = headers_block([
        ("From", mailbox(f"{lc.display_name} moderation", moderation_address(lc))),
        ("To", moderator),
        ("Reply-To", moderation_address(lc, token)),
        ("Subject", subject),
        ("Date", format_datetime(now)),
        ("Message-ID", new_message_id(lc.domain)),
        ("MIME-Version", "1.0"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Loop", lc.address),
    ])
    return head + entity


def answer_to_decider(*, lc: ListConfig, to: str, text: str, now: datetime,
                      post_id: str) -> OutgoingMessage:
    raw = plain_message(sender=mailbox(f"{lc.display_name} moderation", moderation_address(lc)),
                        to=[to], subject=f"Held post {post_id} on {lc.name}", text=text,
                        domain=lc.domain, date=now,
                        extra=[("Auto-Submitted", "auto-replied"), ("X-Loop", lc.address)])
    return OutgoingMessage(audience=Audience.TEAM, envelope_from=bounces(lc), recipients=(to,),
                           raw=raw, list_name=lc.name, reason="moderation.answer")
