"""The SMTP-smuggling defence on received message bytes."""

from __future__ import annotations

from listbot.core.errors import MessageRejected


def check_line_endings(data: bytes) -> None:
    """Refuse bare CR, bare LF and NUL: the SMTP-smuggling defence."""
    if b"\x00" in data:
        raise MessageRejected("NUL byte in message")
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        raise MessageRejected("bare CR or LF in message")
