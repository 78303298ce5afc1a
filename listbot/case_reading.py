"""What the security handler learns from a message before its transaction: who sent it,
which case it names, whether it decrypts, and whether a team member signed it.

All gpg work happens here, off the transaction (DESIGN.md §4.8: a failed or unprotected
decryption yields no plaintext, and gpg's output is then not used at all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

import structlog

from listbot.case_mail import own_message_id, referenced_ids
from listbot.case_model import case_id_pattern
from listbot.config import Config, TeamMember
from listbot.errors import PGPError
from listbot.mailsafe import safe_header_value, sender_of, should_not_autoreply
from listbot.model import Inbound
from listbot.pgp import Keyring
from listbot.pgp_mime import decrypt_message, verify_message

log = structlog.get_logger("listbot.cases")

_PGP_MESSAGE = b"-----BEGIN PGP MESSAGE-----"
_PATCH = re.compile(rb'filename\*?=\s*"?[^"\r\n;]*\.(?:patch|diff)\b', re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    sender: str  # normalised From, else the envelope sender, else ""
    subject: str
    message_id: str | None
    references: tuple[str, ...]
    named_ids: tuple[str, ...]  # case ids from the +detail and the subject, in that order
    no_reply: str | None  # why RFC 3834 forbids an automatic reply, or None
    encrypted: bool
    decryption_problem: str | None  # set when encrypted but no usable plaintext
    plaintext: bytes | None  # the decrypted entity or text; None unless decrypted
    inline: bool  # the plaintext is inline PGP text, not a MIME entity
    team_member: TeamMember | None  # From is a configured team member
    team_signed: bool  # ... and that member's key signed the whole message
    attached_fingerprint: str | None  # a key for the sender that came with the message
    has_patch: bool


def looks_encrypted(headers: Message, raw: bytes) -> bool:
    try:
        if headers.get_content_type() == "multipart/encrypted":
            return True
    except Exception:
        return False
    return _PGP_MESSAGE in raw


def named_case_ids(prefix: str, detail: str | None, subject: str) -> tuple[str, ...]:
    pattern = case_id_pattern(prefix)
    found = [m.upper() for m in pattern.findall(detail or "")]
    found += [m.upper() for m in pattern.findall(subject)]
    return tuple(dict.fromkeys(found))


def team_member(cfg: Config, address: str) -> TeamMember | None:
    return next((m for m in cfg.team_members if m.address == address), None)


def key_parts(data: bytes) -> list[bytes]:
    """Armored public keys attached to (or pasted into) a message or its plaintext."""
    found: list[bytes] = []
    for block in re.findall(rb"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?"
                            rb"-----END PGP PUBLIC KEY BLOCK-----", data, re.DOTALL):
        found.append(block)
    if found:
        return found
    message = BytesParser(policy=compat32).parsebytes(data)
    for part in message.walk():
        if part.get_content_type() == "application/pgp-keys":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append(payload)
    return found


class Reader:
    def __init__(self, cfg: Config, prefix: str, keyring: Keyring | None,
                 passphrase: str | None) -> None:
        self.cfg = cfg
        self.prefix = prefix
        self.keyring = keyring
        self.passphrase = passphrase

    async def read(self, msg: Inbound, headers: Message, now: datetime) -> Reading:
        mbox = sender_of(headers)
        sender = mbox.normalized if mbox else msg.envelope_from.strip().lower()
        try:
            subject = safe_header_value(str(headers.get("Subject", "")))[:200]
        except Exception:
            subject = ""
        member = team_member(self.cfg, sender) if mbox is not None else None
        encrypted = looks_encrypted(headers, msg.raw)
        plaintext, problem, signature_ok, inline = None, None, False, False
        if encrypted:
            plaintext, problem, signature_ok = await self._decrypt(msg.raw, member, now)
            inline = headers.get_content_type() != "multipart/encrypted"
        elif member is not None and member.fingerprint and self.keyring is not None:
            verdict = await verify_message(msg.raw, self.keyring, [member.fingerprint], now)
            signature_ok = verdict.valid and verdict.fingerprint == member.fingerprint
        readable = plaintext if plaintext is not None else (None if encrypted else msg.raw)
        attached = None
        if readable is not None and member is None and sender:
            attached = await self._attached_key(readable, sender)
        return Reading(
            sender=sender, subject=subject, message_id=own_message_id(headers),
            references=tuple(referenced_ids(headers)),
            named_ids=named_case_ids(self.prefix, msg.detail, subject),
            no_reply=should_not_autoreply(
                headers, own_list_ids=[], own_loop=self.cfg.team_address,
                envelope_sender=msg.envelope_sender),
            encrypted=encrypted, decryption_problem=problem, plaintext=plaintext,
            inline=inline, team_member=member, team_signed=signature_ok,
            attached_fingerprint=attached,
            has_patch=bool(readable is not None and _PATCH.search(readable)))

    async def _decrypt(self, raw: bytes, member: TeamMember | None,
                       now: datetime) -> tuple[bytes | None, str | None, bool]:
        if self.keyring is None:
            return None, "no team key configured to decrypt with", False
        allow = [member.fingerprint] if member is not None and member.fingerprint else []
        result = await decrypt_message(raw, self.keyring, allow, now)
        if not result.ok or result.plaintext is None:
            log.warning("case.decryption_failed", reason=result.reason)
            return None, result.reason, False
        sig = result.signature
        signed = bool(member is not None and sig is not None and sig.valid
                      and sig.fingerprint == member.fingerprint)
        return result.plaintext, None, signed

    async def _attached_key(self, data: bytes, sender: str) -> str | None:
        """Import an attached public key only if one of its user ids is the sender's."""
        if self.keyring is None:
            return None
        for block in key_parts(data):
            try:
                keys = await self.keyring.import_keys(block)
            except PGPError as exc:
                log.info("case.key_not_imported", reason=str(exc))
                continue
            for key in keys:
                if any(f"<{sender}>" in uid.lower() or uid.lower() == sender
                       for uid in key.uids) and key.can_encrypt:
                    return key.fingerprint
        return None

    async def known_key(self, address: str, now: datetime) -> str | None:
        """A usable encryption key in the keyring whose user id is exactly this address."""
        if self.keyring is None or not address:
            return None
        for key in await self.keyring.list_keys():
            if key.usable_at(now) and key.can_encrypt and any(
                    f"<{address}>" in uid.lower() for uid in key.uids):
                return key.fingerprint
        return None
