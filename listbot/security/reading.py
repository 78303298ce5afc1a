"""What the security handler learns from a message before its transaction: who sent it,
which case it names, whether it decrypts, and whether a team member signed it.

All gpg work happens here, off the transaction. A failed or unprotected decryption
yields no plaintext, and gpg's output is then not used at all
(docs/design.md "PGP is checked, not trusted").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

import structlog

from listbot.core.case_model import case_id_pattern
from listbot.core.config import Config, TeamMember
from listbot.core.errors import PGPError
from listbot.core.mail.autoreply import reply_target
from listbot.core.mail.headers import safe_header_value
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_keys import KeyInfo
from listbot.core.mail.pgp_mime import decrypt_view, verify_view
from listbot.core.mail.view import MessageView
from listbot.core.model import Inbound
from listbot.security.case_mail import own_message_id, referenced_ids
from listbot.security.reporter_keys import choose_attached, keys_for, known_for

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
    # Where an automatic reply goes: the envelope sender, never a From that differs.
    reply_to: str | None
    encrypted: bool
    decryption_problem: str | None  # set when encrypted but no usable plaintext
    plaintext: bytes | None  # the decrypted entity or text; None unless decrypted
    inline: bool  # the plaintext is inline PGP text, not a MIME entity
    team_member: TeamMember | None  # From is a configured team member
    team_signed: bool  # ... and that member's key signed the whole message
    attached_fingerprint: str | None  # a key for the sender that came with the message
    key_problem: str | None  # why a key that came with the message was not taken
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


def key_parts(data: bytes, parsed: Message | None = None) -> list[bytes]:
    """Armored public keys attached to (or pasted into) a message or its plaintext;
    `parsed` is `data` already parsed, when it is."""
    found: list[bytes] = []
    for block in re.findall(rb"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?"
                            rb"-----END PGP PUBLIC KEY BLOCK-----", data, re.DOTALL):
        found.append(block)
    if found:
        return found
    message = parsed if parsed is not None else MessageView.parse(data).tree
    for part in message.walk():
        if part.get_content_type() == "application/pgp-keys":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append(payload)
    return found


RegisteredKey = Callable[[str], Awaitable[str | None]]


async def _nothing_registered(address: str) -> str | None:
    return None


class Reader:
    def __init__(self, cfg: Config, prefix: str, keyring: Keyring | None,
                 passphrase: str | None, registered: RegisteredKey = _nothing_registered,
                 ) -> None:
        self.cfg = cfg
        self.prefix = prefix
        self.keyring = keyring
        self.passphrase = passphrase
        self.registered = registered  # a member's own fingerprint for an address

    async def read(self, msg: Inbound, now: datetime) -> Reading:
        view = msg.view
        headers = view.header_message
        mbox = view.sender
        sender = mbox.normalized if mbox else msg.envelope_from.strip().lower()
        try:
            subject = safe_header_value(str(headers.get("Subject", "")))[:200]
        except Exception:
            subject = ""
        member = team_member(self.cfg, sender) if mbox is not None else None
        encrypted = looks_encrypted(headers, msg.raw)
        plaintext, problem, signature_ok, inline = None, None, False, False
        if encrypted:
            plaintext, problem, signature_ok = await self._decrypt(view, member, now)
            inline = headers.get_content_type() != "multipart/encrypted"
        elif member is not None and member.fingerprint and self.keyring is not None:
            verdict = await verify_view(view, self.keyring, [member.fingerprint], now)
            signature_ok = verdict.valid and verdict.fingerprint == member.fingerprint
        readable = plaintext if plaintext is not None else (None if encrypted else msg.raw)
        attached, key_problem = None, None
        # Only a parsed From names whom an attached key may speak for.
        if readable is not None and member is None and mbox is not None:
            parsed = view.tree if plaintext is None else None
            attached, key_problem = await self._attached_key(readable, parsed, sender, now)
        target = reply_target(headers, own_list_ids=[], own_loop=self.cfg.team_address,
                              envelope_sender=msg.envelope_sender)
        return Reading(
            sender=sender, subject=subject, message_id=own_message_id(headers),
            references=tuple(referenced_ids(headers)),
            named_ids=named_case_ids(self.prefix, msg.detail, subject),
            no_reply=target.reason, reply_to=target.address,
            encrypted=encrypted, decryption_problem=problem, plaintext=plaintext,
            inline=inline, team_member=member, team_signed=signature_ok,
            attached_fingerprint=attached, key_problem=key_problem,
            has_patch=bool(readable is not None and _PATCH.search(readable)))

    async def _decrypt(self, view: MessageView, member: TeamMember | None,
                       now: datetime) -> tuple[bytes | None, str | None, bool]:
        if self.keyring is None:
            return None, "no team key configured to decrypt with", False
        allow = [member.fingerprint] if member is not None and member.fingerprint else []
        result = await decrypt_view(view, self.keyring, allow, now)
        if not result.ok or result.plaintext is None:
            log.warning("case.decryption_failed", reason=result.reason)
            return None, result.reason, False
        sig = result.signature
        signed = bool(member is not None and sig is not None and sig.valid
                      and sig.fingerprint == member.fingerprint)
        return result.plaintext, None, signed

    async def _attached_key(self, data: bytes, parsed: Message | None, sender: str,
                            now: datetime) -> tuple[str | None, str | None]:
        """Import an attached key for the sender, unless another key already speaks for
        them; (fingerprint taken, why a key was not taken)."""
        if self.keyring is None:
            return None, None
        problem = None
        for block in key_parts(data, parsed):
            try:
                scanned = await self.keyring.scan_keys(block)
            except PGPError as exc:
                log.info("case.key_not_imported", reason=str(exc))
                continue
            choice = choose_attached(sender, scanned, await self._keys_for(sender),
                                     await self.registered(sender), now)
            if choice.fingerprint is None:
                problem = problem or choice.problem
                continue
            if await self._import_for(block, sender, choice.fingerprint):
                return choice.fingerprint, None
        if problem is not None:
            log.warning("case.key_ignored", sender=sender, reason=problem)
        return None, problem

    async def _import_for(self, block: bytes, sender: str, fingerprint: str) -> bool:
        assert self.keyring is not None
        try:
            keys = await self.keyring.import_keys(block, only_address=sender)
        except PGPError as exc:
            log.info("case.key_not_imported", reason=str(exc))
            return False
        return any(k.fingerprint == fingerprint for k in keys_for(sender, keys))

    async def _keys_for(self, address: str) -> tuple[KeyInfo, ...]:
        assert self.keyring is not None
        return keys_for(address, await self.keyring.list_keys())

    async def known_key(self, address: str, now: datetime) -> str | None:
        """The key to encrypt to this address: its registered one, else the first key
        whose user id is exactly this address."""
        if self.keyring is None or not address:
            return None
        return known_for(address, await self.keyring.list_keys(),
                         await self.registered(address), now)
