"""Builders of every message listbot writes. Headers are written by hand through
headers.encode_header so no CR/LF from received data can reach them
(docs/design.md "Safe headers and addresses"), and distributed mail keeps the original
bytes with our headers prepended (docs/design.md "Forward bytes")."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.utils import format_datetime

from listbot.core.mail.headers import encode_header

# Received headers listbot replaces on distribution; everything else stays byte-identical.
REPLACED_ON_DISTRIBUTION = frozenset({
    "from", "reply-to", "sender", "list-id", "list-post", "list-help", "list-unsubscribe",
    "list-subscribe", "list-archive", "list-owner", "precedence", "x-loop", "return-path",
    "x-listbot-rule-hits", "x-original-from", "delivered-to", "errors-to",
})


def new_message_id(domain: str) -> str:
    return f"<{secrets.token_hex(12)}@{domain}>"


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (each with its continuation lines, CRLF included) and the body."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        head, body = raw, b""
    else:
        head, body = raw[: end + 2], raw[end + 4:]
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, body


def field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def headers_block(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(encode_header(name, value) for name, value in pairs)


def rewrite(raw: bytes, new_headers: Sequence[tuple[str, str]],
            drop: frozenset[str] = REPLACED_ON_DISTRIBUTION) -> bytes:
    """Prepend our headers, drop the received ones we replace, keep the rest byte-exact."""
    fields, body = split_message(raw)
    kept = b"".join(f for f in fields if field_name(f) not in drop)
    return headers_block(new_headers) + kept + b"\r\n" + body


def plain_message(*, sender: str, to: Sequence[str], subject: str, text: str, domain: str,
                  date: datetime, extra: Sequence[tuple[str, str]] = (),
                  message_id: str | None = None) -> bytes:
    """A text/plain UTF-8 message with every header encoded safely."""
    pairs: list[tuple[str, str]] = [
        ("From", sender),
        ("To", ", ".join(to)),
        ("Subject", subject),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id or new_message_id(domain)),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "8bit"),
        *extra,
    ]
    body = "\r\n".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    if not body.endswith("\r\n"):
        body += "\r\n"
    return headers_block(pairs) + b"\r\n" + body.encode("utf-8")


def mailbox(display: str, address: str) -> str:
    """A From/To value; the display name is quoted so specials in it stay inert."""
    cleaned = display.replace("\\", "").replace('"', "'")
    return f'"{cleaned}" <{address}>' if cleaned else address
