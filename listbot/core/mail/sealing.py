"""Embargoed mail to members as ciphertext, per `[pgp]`
(docs/design.md "Encryption to members").

The plaintext message is built once; each member gets it wrapped in PGP/MIME,
one ciphertext per member by default, or one per hidden-recipient group when
allowed. A member without a usable key gets no copy at all under
`require_encryption`: the caller holds that delivery and alerts the team.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from listbot.core.errors import PGPError
from listbot.core.mail.headers import encode_header
from listbot.core.mail.keyring import PgpConfig
from listbot.core.mail.outbound import field_name, split_message
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_keys import KeyInfo, normalise_fingerprint
from listbot.core.mail.pgp_mime import build_encrypted_mime
from listbot.core.model import Member

# Headers that describe the body: they move inside the ciphertext.
_CONTENT_HEADERS = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})


@dataclass(frozen=True)
class SealedCopy:
    recipients: tuple[str, ...]
    raw: bytes
    message_id: str
    encrypted: bool


@dataclass(frozen=True)
class SealPlan:
    copies: tuple[SealedCopy, ...]
    held: tuple[Member, ...]  # no usable key and encryption required: nothing is sent
    refused: tuple[Member, ...] = ()  # gpg would not encrypt to a key that looked usable


def copy_tag(address: str) -> str:
    """A stable, opaque per-recipient tag for Message-IDs ([a-z0-9])."""
    return hashlib.sha256(address.encode()).hexdigest()[:16]


def key_problem(info: KeyInfo | None, now: datetime) -> str | None:
    """Why this key cannot be encrypted to at `now`, or None when it can."""
    if info is None:
        return "key not in the keyring"
    if info.revoked:
        return "key revoked"
    if not info.usable_at(now):
        return "key expired"
    if not (any(s.can_encrypt and s.usable_at(now) for s in info.subkeys)
            or (info.can_encrypt and not info.subkeys)):
        return "no usable encryption subkey"
    return None


async def encryption_problems(keyring: Keyring, fingerprints: Sequence[str | None],
                              now: datetime) -> list[str | None]:
    """Why each fingerprint's key cannot be encrypted to now (None: it can), from one
    keyring listing for the whole batch."""
    found = await keyring.keys_info([f for f in fingerprints if f])
    return [key_problem(found.get(normalise_fingerprint(f)), now) if f else "no key configured"
            for f in fingerprints]


def wrap_encrypted(raw: bytes, ciphertext: bytes, message_id: str) -> bytes:
    """The outer message: the plaintext's headers (new Message-ID) around PGP/MIME."""
    fields, _ = split_message(raw)
    outer = [f for f in fields
             if field_name(f) not in _CONTENT_HEADERS | {"message-id", "mime-version"}]
    return (b"".join(outer) + encode_header("Message-ID", message_id)
            + b"MIME-Version: 1.0\r\n" + build_encrypted_mime(ciphertext, message_id))


def inner_entity(raw: bytes) -> bytes:
    """What is encrypted: the body with the headers that describe it."""
    fields, body = split_message(raw)
    return b"".join(f for f in fields if field_name(f) in _CONTENT_HEADERS) + b"\r\n" + body


def _groups(members: Sequence[Member], size: int) -> list[list[Member]]:
    return [list(members[i:i + size]) for i in range(0, len(members), size)]


async def seal_for_members(
    raw: bytes,
    members: Sequence[Member],
    *,
    keyring: Keyring,
    pgp: PgpConfig,
    now: datetime,
    hidden_recipients: bool,
    message_id_for: Callable[[str], str],
    plain_message_id: str,
    tolerate_refusals: bool = False,
) -> SealPlan:
    """Copies for every member: encrypted where a key is usable, else plaintext or held.

    With `tolerate_refusals`, a member whose key gpg refuses (it judges validity on
    the real clock, and more strictly than a key listing) is treated as keyless and
    named in `refused`; without it the PGPError propagates.
    """
    keyed: list[Member] = []
    plain: list[Member] = []
    held: list[Member] = []
    problems = await encryption_problems(keyring, [m.fingerprint for m in members], now)
    for m, problem in zip(members, problems, strict=True):
        if problem is None:
            keyed.append(m)
        elif pgp.require_encryption:
            held.append(m)
        else:
            plain.append(m)
    entity = inner_entity(raw)
    size = pgp.hidden_recipients_max_group if hidden_recipients else 1
    sealed: list[SealedCopy] = []
    refused: list[Member] = []
    for group in _groups(keyed, size):
        if not tolerate_refusals:
            sealed.append(await _seal(keyring, raw, entity, group, message_id_for))
            continue
        done, lost = await _seal_tolerant(keyring, raw, entity, group, message_id_for)
        sealed += done
        refused += lost
    (held if pgp.require_encryption else plain).extend(refused)
    copies: list[SealedCopy] = []
    if plain:
        copies.append(SealedCopy(tuple(m.address for m in plain), raw, plain_message_id, False))
    return SealPlan((*copies, *sealed), tuple(held), tuple(refused))


async def _seal(keyring: Keyring, raw: bytes, entity: bytes, group: Sequence[Member],
                message_id_for: Callable[[str], str]) -> SealedCopy:
    fprs = [m.fingerprint for m in group if m.fingerprint]
    cipher = await keyring.encrypt(entity, fprs, hidden_recipients=len(group) > 1)
    mid = message_id_for(group[0].address)
    return SealedCopy(tuple(m.address for m in group), wrap_encrypted(raw, cipher, mid), mid,
                      True)


async def _seal_tolerant(
    keyring: Keyring, raw: bytes, entity: bytes, group: Sequence[Member],
    message_id_for: Callable[[str], str],
) -> tuple[list[SealedCopy], list[Member]]:
    """One refused key fails a whole hidden-recipient group: the others are then
    encrypted one by one, so only the refused member loses its ciphertext."""
    try:
        return [await _seal(keyring, raw, entity, group, message_id_for)], []
    except PGPError:
        if len(group) == 1:
            return [], list(group)
    sealed: list[SealedCopy] = []
    refused: list[Member] = []
    for m in group:
        done, lost = await _seal_tolerant(keyring, raw, entity, [m], message_id_for)
        sealed += done
        refused += lost
    return sealed, refused
