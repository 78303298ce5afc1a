"""Discuss posts to members as ciphertext when `[pgp] require_encryption` is on.

What is encrypted is the whole distributed message (our list headers prepended
to the poster's original bytes; docs/design.md "Forward bytes") as one
`message/rfc822` part, not just the original body entity. Reasons:
- the Subject and every other header of the post travel inside the
  ciphertext; discuss subjects routinely name the embargoed issue, and an
  encrypted body under a cleartext "Re: XSA-465 exploit for the XSAVE bug"
  would leak exactly what the embargo protects;
- the poster's bytes stay intact inside, so their DKIM or PGP signature can
  still be checked by the reader (encrypting only the body entity would strip
  the headers a DKIM signature covers).
The outer message carries only what delivery and list filtering need: the
list's own headers, Date, threading references and a neutral Subject. Every
member's copy shares the post's Message-ID so replies thread as usual.

A member without a usable key gets no bytes at all: a HELD row (empty body, so
releasing it by hand can never send plaintext) and one alert to the team.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from listbot.core.config import Config, ListConfig
from listbot.core.errors import PGPError
from listbot.core.mail.headers import encode_header
from listbot.core.mail.keyring import PgpConfig, parse_pgp
from listbot.core.mail.outbound import field_name, split_message
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.sealing import seal_for_members
from listbot.core.model import Member, OutgoingMessage
from listbot.core.outbox.alerts import raise_alert
from listbot.core.store import Tx

# Headers of the distributed message that may also stand in the clear outside.
OUTER = frozenset({"from", "reply-to", "to", "date", "in-reply-to", "references", "list-id",
                   "list-post", "list-help", "precedence", "x-loop", "auto-submitted"})


@dataclass(frozen=True)
class SealedPost:
    messages: tuple[OutgoingMessage, ...]
    held: tuple[str, ...]  # member addresses without a usable key


@dataclass(frozen=True)
class PostSealer:
    pgp: PgpConfig
    keyring: Keyring

    @classmethod
    def from_config(cls, cfg: Config, keyring: Keyring | None) -> PostSealer | None:
        """None when posts go as they are (require_encryption off). The keyring is the
        caller's: one per GnuPG home, so its lock keeps gpg runs one at a time."""
        pgp = parse_pgp(cfg)
        if not pgp.require_encryption:
            return None
        if keyring is None:
            raise PGPError("[pgp] require_encryption is on but there is no keyring")
        return cls(pgp, keyring)

    async def seal(self, out: OutgoingMessage, members: Sequence[Member], lc: ListConfig,
                   message_id: str, now: datetime) -> SealedPost:
        """One ciphertext per member with a usable key; the rest held."""
        wanted = set(out.recipients)
        plan = await seal_for_members(
            envelope(out.raw, lc, message_id), [m for m in members if m.address in wanted],
            keyring=self.keyring, pgp=self.pgp, now=now, hidden_recipients=False,
            message_id_for=lambda _: message_id, plain_message_id=message_id)
        copies = tuple(replace(out, recipients=c.recipients, raw=c.raw, message_id=message_id)
                       for c in plan.copies if c.encrypted)
        return SealedPost(copies, tuple(m.address for m in plan.held))


def envelope(distributed: bytes, lc: ListConfig, message_id: str) -> bytes:
    """The plaintext to seal: cleartext-safe outer headers around message/rfc822."""
    fields, _ = split_message(distributed)
    outer = [f for f in fields if field_name(f) in OUTER]
    return (b"".join(outer)
            + encode_header("Subject", f"Encrypted message via {lc.display_name}")
            + encode_header("Message-ID", message_id)
            + b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + distributed)


async def enqueue_sealed(tx: Tx, cfg: Config, out: OutgoingMessage, post: SealedPost,
                         subject: str) -> int:
    """Write the encrypted copies and the held rows; one alert names who was held."""
    count = 0
    for msg in post.messages:
        count += len(await tx.enqueue(msg))
    if post.held:
        ids = await tx.enqueue(replace(out, recipients=post.held, raw=b"",
                                       reason="discuss.post.held"))
        await tx.hold(ids)
        names = ", ".join(post.held)
        await raise_alert(tx, cfg, "discuss-held",
                          f"{subject}: no usable key for {len(post.held)} member(s); "
                          f"not sent to {names}"[:300],
                          {"subject": subject, "recipients": list(post.held)})
    return count
