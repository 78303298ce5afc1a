"""Builders of case mail: team copies, the acknowledgement, relays to the reporter.

Team copies keep the original bytes (docs/design.md "Forward bytes") behind our
headers; encrypted copies carry those bytes, unchanged, as a message/rfc822 entity
inside the ciphertext.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email.message import Message
from email.utils import format_datetime

from listbot.core.calendar.timeline import Timeline
from listbot.core.config import Config
from listbot.core.mail.headers import safe_header_value
from listbot.core.mail.outbound import (
    REPLACED_ON_DISTRIBUTION,
    headers_block,
    mailbox,
    new_message_id,
    plain_message,
    rewrite,
    split_message,
)
from listbot.core.mail.pgp_mime import split_entity, split_multipart

MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
# Threading headers stay as the sender wrote them; the subject gets the case id.
TEAM_COPY_DROP = REPLACED_ON_DISTRIBUTION | {"subject", "x-listbot-case",
                                             "x-listbot-envelope-sender"}
CONTENT_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition",
                   "content-description")


def case_address(cfg: Config, case_id: str) -> str:
    local, _, domain = cfg.team_address.partition("@")
    return f"{local}+{case_id}@{domain}"


def tagged_subject(case_id: str, subject: str) -> str:
    subject = safe_header_value(subject)[:200]
    if case_id.lower() in subject.lower():
        return subject
    return f"[{case_id}] {subject}".strip()


def message_ids(headers: Message, name: str) -> list[str]:
    try:
        values = [str(v) for v in headers.get_all(name, [])]
    except Exception:
        return []
    return [m for v in values for m in MESSAGE_ID.findall(v)]


def own_message_id(headers: Message) -> str | None:
    found = message_ids(headers, "Message-ID")
    return found[0] if len(found) == 1 else None


def referenced_ids(headers: Message) -> list[str]:
    """In-Reply-To first, then References newest first: the closest ancestor wins."""
    refs = message_ids(headers, "References")
    return list(dict.fromkeys(message_ids(headers, "In-Reply-To") + refs[::-1]))


def _case_headers(cfg: Config, case_id: str, kind: str) -> list[tuple[str, str]]:
    return [("X-Listbot-Case", case_id), ("X-Listbot-Case-Message", kind),
            ("X-Loop", cfg.team_address)]


def team_copy(cfg: Config, raw: bytes, case_id: str, *, subject: str, sender: str,
              kind: str, envelope: str | None = None) -> bytes:
    """The original bytes with our headers prepended and the case id in the subject;
    `envelope`: the envelope sender, given when it is not the From (automatic replies
    went to it, not to the From)."""
    headers = [("Subject", tagged_subject(case_id, subject)),
               ("From", mailbox(f"{sender} via {cfg.team_name}", cfg.team_address)),
               ("Reply-To", mailbox(cfg.team_name, case_address(cfg, case_id))),
               ("X-Original-From", sender)]
    if envelope is not None:
        headers.append(("X-Listbot-Envelope-Sender", envelope))
    return rewrite(raw, [*headers, *_case_headers(cfg, case_id, kind)], drop=TEAM_COPY_DROP)


def rfc822_entity(raw: bytes) -> bytes:
    return b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n" + raw


def encrypted_envelope(cfg: Config, plain_copy: bytes, encrypted_body: bytes,
                       to: str) -> bytes:
    """Outer headers of an encrypted team copy: threading and subject stay readable so
    mail clients thread the case; everything else is inside the ciphertext."""
    fields, _ = split_message(plain_copy)
    keep = {"subject", "from", "reply-to", "date", "message-id", "in-reply-to",
            "references", "x-listbot-case", "x-listbot-case-message", "x-loop"}
    kept = b"".join(f for f in fields if f.split(b":", 1)[0].strip().lower().decode(
        "ascii", "replace") in keep)
    return (headers_block([("To", to), ("MIME-Version", "1.0")]) + kept + encrypted_body)


def content_entity(raw: bytes) -> bytes:
    """The body of a message as a MIME entity: its content headers and body bytes."""
    fields, body = split_message(raw)
    content = b"".join(f for f in fields if f.split(b":", 1)[0].strip().lower().decode(
        "ascii", "replace") in CONTENT_HEADERS)
    if not content:
        content = b"Content-Type: text/plain; charset=us-ascii\r\n"
    return content + b"\r\n" + body


def unsigned_entity(entity: bytes) -> bytes:
    """The signed first part of a multipart/signed entity (a member's signature is not
    forwarded: the relay is signed by the team), else the entity itself."""
    headers, body = split_entity(entity)
    if headers.get_content_type() != "multipart/signed":
        return entity
    boundary = headers.get_param("boundary")
    parts = split_multipart(body, boundary) if isinstance(boundary, str) else None
    return parts[0] if parts else entity


def text_entity(text: bytes) -> bytes:
    return b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" \
        + text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def relay_headers(cfg: Config, case_id: str, *, subject: str, to: str, now: datetime,
                  threading: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("From", mailbox(cfg.team_name, cfg.team_address)), ("To", to),
            ("Reply-To", mailbox(cfg.team_name, case_address(cfg, case_id))),
            ("Subject", tagged_subject(case_id, subject)), ("Date", format_datetime(now)),
            ("Message-ID", new_message_id(cfg.team_address.partition("@")[2])),
            ("MIME-Version", "1.0"), *threading, *_case_headers(cfg, case_id, "relay")]


def ack_text(cfg: Config, case_id: str, timeline: Timeline) -> str:
    def utc(value: datetime) -> str:
        return f"{value:%A %Y-%m-%d %H:%M} UTC"
    return (
        f"Thank you for your report to the {cfg.team_name}.\n\n"
        f"It is tracked as case {case_id}. Please keep {case_id} in the subject of\n"
        f"follow-ups, or write to {case_address(cfg, case_id)}.\n\n"
        "What happens next: the team reviews the report and answers you from this\n"
        "address. Unless we agree on other dates with you, the default timeline\n"
        "of our disclosure policy applies:\n\n"
        f"  report received:             {utc(timeline.arrival)}\n"
        f"  pre-disclosure to members:   {utc(timeline.predisclosure_at)}\n"
        f"  public disclosure:           {utc(timeline.public_at)}\n\n"
        "If you need an earlier public date, tell us; a later one needs the team's\n"
        "agreement. If the issue is being exploited in the wild, say so: we then\n"
        "release as soon as we can.\n\n"
        "Please encrypt sensitive details to the team key.\n"
    )


def ack_message(cfg: Config, case_id: str, *, to: str, text: str, now: datetime,
                in_reply_to: str | None) -> bytes:
    extra = [("Auto-Submitted", "auto-replied"), ("X-Loop", cfg.team_address),
             ("Reply-To", mailbox(cfg.team_name, case_address(cfg, case_id))),
             ("X-Listbot-Case", case_id)]
    if in_reply_to is not None:
        extra += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    return plain_message(sender=mailbox(cfg.team_name, cfg.team_address), to=[to],
                         subject=f"[{case_id}] Your report was received", text=text,
                         domain=cfg.team_address.partition("@")[2], date=now, extra=extra)


def reminder_message(cfg: Config, case_id: str, kind: str, due: datetime,
                     now: datetime) -> bytes:
    what = {"predisclosure_due": "the pre-disclosure advisory is due",
            "no_patch": "no patch is attached and the public release is 10 working days "
                        "away: send an advisory with the current state of knowledge",
            "release_day": "today is the public release day"}.get(kind, kind)
    text = (f"Case {case_id}: {what}.\n\nDue: {due:%A %Y-%m-%d %H:%M} UTC\n\n"
            f"See: listbot case timeline {case_id} --explain\n")
    return plain_message(sender=mailbox("listbot", cfg.team_address),
                         to=list(cfg.team_recipients),
                         subject=f"[{case_id}] Reminder: {what}"[:200], text=text,
                         domain=cfg.hostname, date=now,
                         extra=[("Auto-Submitted", "auto-generated"),
                                ("X-Loop", cfg.team_address), ("X-Listbot-Case", case_id)])
