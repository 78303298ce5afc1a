"""Helpers for moderation tests: a daemon with two signing moderators, replies."""

from __future__ import annotations

import re
from email import message_from_bytes
from pathlib import Path
from typing import Any

from listbot.app import App
from listbot.core.mail.pgp_mime import build_signed_mime
from tests.daemon import lmtp_send, post, settle
from tests.pgp_fixtures import PgpKeys, clearsign, detach_sign
from tests.sink import Sink

RULES = Path(__file__).resolve().parent.parent / "rules"
ALICE = "alice@example.org"
BOB = "bob@example.org"
MEMBER = "security@vendor-a.example"
DISCUSS = "discuss@lists.example.org"
TOKEN_RE = re.compile(r"discuss-mod\+([a-z2-7]{26})@lists\.example\.org")


def moderation_config(home: Path, keys: PgpKeys, rules: Path = RULES,
                      encrypt: bool = False) -> dict[str, Any]:
    return {
        "pgp": {"home": str(home)},
        "rules": {"dir": str(rules)},
        "moderation": {"encrypt_requests": encrypt},
        "project": {"security_contact": "security@example.org",
                    "public_lists": ["announce@lists.example.org"]},
        "team": {"members": [
            {"name": "Alice", "address": ALICE, "fingerprint": keys.moderator},
            {"name": "Bob", "address": BOB, "fingerprint": keys.team}]},
        "lists": {"discuss": {"moderators": [ALICE, BOB], "require_signed_decisions": True},
                  "applications": {"require_signed_decisions": True}},
    }


def held_post(subject: str = "A question", body: str = "What do you all think?\r\n") -> bytes:
    return post(f"Vendor A <{MEMBER}>", subject=subject, body=body)


async def hold_one(app: App, sink: Sink, subject: str = "A question") -> dict[str, str]:
    """Send a post the rules hold; returns moderator address -> token from the requests."""
    before = len(sink.deliveries())
    assert await lmtp_send(app, MEMBER, [DISCUSS], held_post(subject)) == {}
    await sink.wait_deliveries(before + 2)
    await settle(app)
    tokens: dict[str, str] = {}
    for rcpt, rec in sink.deliveries()[before:]:
        found = TOKEN_RE.search(str(rec.message["Reply-To"]))
        assert found, rec.data[:400]
        tokens[rcpt] = found.group(1)
    return tokens


def reply(sender: str, text: str, extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: discuss-moderation@lists.example.org\r\n"
            f"Subject: Re: held post\r\n{extra}MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            + text.replace("\r\n", "\n").replace("\n", "\r\n")).encode()


def signed_reply(home: Path, fpr: str, sender: str, text: str,
                 entity: bytes | None = None) -> bytes:
    """PGP/MIME signed reply whose signed part is a text/plain with `text` (or `entity`)."""
    if entity is None:
        entity = (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                  + text.replace("\n", "\r\n").encode())
    signature = detach_sign(home, entity, fpr)
    return (f"From: {sender}\r\nTo: discuss-moderation@lists.example.org\r\n"
            f"Subject: Re: held post\r\nMIME-Version: 1.0\r\n").encode() + build_signed_mime(
                entity, signature, "test")


def inline_signed_reply(home: Path, fpr: str, sender: str, text: str) -> bytes:
    body = clearsign(home, text.encode(), fpr).decode()
    return reply(sender, body)


async def send_reply(app: App, token: str, data: bytes, envelope: str = ALICE) -> None:
    await lmtp_send(app, envelope, [f"discuss-mod+{token}@lists.example.org"], data)
    await settle(app)


def payload_text(data: bytes) -> str:
    msg = message_from_bytes(data)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    raw = part.get_payload(decode=True)
    return raw.decode() if isinstance(raw, bytes) else ""
