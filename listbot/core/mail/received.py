"""Facts read from a received message's headers for replies to it: its id, its
subject made safe to quote, and whether it may be answered at all (RFC 3834)."""

from __future__ import annotations

import re
from email.message import EmailMessage, Message

from listbot.core.config import ListConfig
from listbot.core.mail.autoreply import ReplyTarget, reply_target, should_not_autoreply
from listbot.core.mail.headers import safe_header_value

MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


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


def no_reply_reason(lc: ListConfig, headers: Message, envelope_sender: str | None) -> str | None:
    """Why mail to this list must get no automatic reply (RFC 3834, our own list and
    loop), or None."""
    return should_not_autoreply(headers, own_list_ids=[lc.list_id], own_loop=lc.address,
                                envelope_sender=envelope_sender)


def list_reply_target(lc: ListConfig, headers: Message,
                      envelope_sender: str | None) -> ReplyTarget:
    """Where a list's automatic reply to this message goes, if anywhere
    (`autoreply.reply_target` with the list's own List-Id and loop address)."""
    return reply_target(headers, own_list_ids=[lc.list_id], own_loop=lc.address,
                        envelope_sender=envelope_sender)
