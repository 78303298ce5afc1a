"""Plain values shared by the services. Datetimes are aware UTC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from listbot.core.mail.view import MessageView


class Audience(StrEnum):
    """The class every outgoing message carries; the delivery gate decides on it."""

    EMBARGOED = "embargoed"  # pre-disclosure advisories and every discuss post
    TEAM = "team"
    PUBLIC = "public"
    # Automatic replies to one sender that quote nothing embargoed (the gate checks none).
    NOTICE = "notice"


class InboundState(StrEnum):
    NEW = "new"
    CLAIMED = "claimed"
    DONE = "done"
    QUARANTINED = "quarantined"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # permanent: the relay said 5xx or the retry period ran out
    REFUSED = "refused"  # the audience gate refused it; an alert was raised
    HELD = "held"  # waits for a person (e.g. a member without a usable key)
    # Built ahead of an embargo instant (encrypted in advance); only the release claim,
    # in its own transaction, turns these into PENDING rows.
    STAGED = "staged"
    CANCELLED = "cancelled"  # superseded before it was sent (instant moved, cancelled)


# The intake sources whose messages come without an SMTP envelope: their stored
# envelope_from is "" but means "unknown", not the null sender <>.
IMAP_SOURCE = "imap"
# `listbot inject` without --from: a pipe that did not say who sent it.
INJECT_NO_ENVELOPE = "inject-noenv"
ENVELOPELESS_SOURCES = frozenset({IMAP_SOURCE, INJECT_NO_ENVELOPE})


class RecipientRole(StrEnum):
    """What an address of a list is for."""

    POST = "post"
    MODERATION = "moderation"
    BOUNCES = "bounces"
    REQUEST = "request"  # -request, -join, -subscribe: logged, never acted on


@dataclass(frozen=True)
class Route:
    list_name: str
    role: RecipientRole
    detail: str | None  # the +detail of a sub-address (token, case id)


@dataclass(frozen=True)
class Inbound:
    id: int
    source: str
    envelope_from: str
    recipient: str
    list_name: str
    role: RecipientRole
    detail: str | None
    raw: bytes
    received_at: datetime
    attempts: int

    @property
    def envelope_sender(self) -> str | None:
        """The SMTP envelope sender ("" is the null sender), or None when the source has
        no envelope: an IMAP message must not pass for a bounce, nor a bounce for mail."""
        return envelope_sender_of(self.source, self.envelope_from)

    @cached_property
    def view(self) -> MessageView:
        """The message parsed once; every step of its handling reads this."""
        return MessageView.parse(self.raw, self.envelope_sender)


def envelope_sender_of(source: str, envelope_from: str) -> str | None:
    """What a stored message's envelope says of its sender: "" is the null sender, None
    means its source had no envelope (IMAP, inject without --from)."""
    return None if source in ENVELOPELESS_SOURCES else envelope_from


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    address: str
    fingerprint: str | None
    added_at: datetime


@dataclass(frozen=True)
class OutgoingMessage:
    """One message body and everyone it goes to. Stored before any byte is sent."""

    audience: Audience
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    list_name: str | None = None
    case_id: str | None = None
    # Public advisory copies may not leave before this instant (the gate checks it again).
    not_before: datetime | None = None
    # With a dedupe key, a second enqueue of the same (key, recipient) is a no-op.
    dedupe_key: str | None = None
    message_id: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    body_id: int
    audience: Audience
    envelope_from: str
    recipient: str
    list_name: str | None
    case_id: str | None
    not_before: datetime | None
    state: OutboxState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_reply: str | None
    message_id: str | None
    dedupe_key: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any] = field(default_factory=dict)
