"""Helpers for application tests: a daemon with a public applications list."""

from __future__ import annotations

import re
from email import message_from_bytes
from pathlib import Path
from typing import Any

from listbot.app import App
from tests.daemon import lmtp_send, settle
from tests.moderation_helpers import moderation_config
from tests.pgp_fixtures import PgpKeys
from tests.sink import Received, Sink

DATA = Path(__file__).parent / "data" / "applications"
LIST = "applications@lists.example.org"
SUBSCRIBERS = ["reader@readers.example", "watcher@press.example"]
TOKEN_RE = re.compile(r"applications-mod\+([^@\s>]+)@lists\.example\.org")


def app_config(home: Path, keys: PgpKeys, **applications: Any) -> dict[str, Any]:
    cfg = moderation_config(home, keys)
    cfg["project"]["name"] = "Xen"
    cfg["applications"] = {"subscribers": SUBSCRIBERS, **applications}
    return cfg


def example(name: str) -> bytes:
    """An example application as it arrives over LMTP (CRLF line endings)."""
    data = (DATA / name).read_bytes()
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def envelope_of(data: bytes) -> str:
    sender = message_from_bytes(data)["From"]
    found = re.search(r"<([^>]+)>", sender)
    return found.group(1) if found else sender.strip()


async def send(app: App, data: bytes, rcpt: str = LIST, envelope: str | None = None) -> None:
    assert await lmtp_send(app, envelope or envelope_of(data), [rcpt], data) == {}
    await settle(app)


def text_of(rec: Received) -> str:
    part = next(p for p in rec.message.walk() if p.get_content_type() == "text/plain")
    raw = part.get_payload(decode=True)
    return raw.decode() if isinstance(raw, bytes) else ""


def to(sink: Sink, address: str) -> list[Received]:
    return [rec for rcpt, rec in sink.deliveries() if rcpt == address]


def tokens_for(sink: Sink, start: int = 0) -> dict[str, str]:
    """Team member -> token, from the decision requests delivered after `start`."""
    out: dict[str, str] = {}
    for rcpt, rec in sink.deliveries()[start:]:
        found = TOKEN_RE.search(str(rec.message.get("Reply-To", "")))
        if found:
            out[rcpt] = found.group(1)
    return out


def decision_reply(sender: str, text: str) -> bytes:
    return (f"From: {sender}\r\nTo: applications-moderation@lists.example.org\r\n"
            f"Subject: Re: application\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n").encode()
