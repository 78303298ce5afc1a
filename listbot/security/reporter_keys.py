"""Which key speaks for a reporter's address: pure decisions over keys gpg described.

An address matches a key only through the parsed addr-spec of one of its user ids,
compared exactly in normalised form: `eve-victim@example.org` or
`victim@example.org.evil` never stand for `victim@example.org`. A key attached to a
message is taken only for the sender of that message, and the first key known for an
address wins: a different one is ignored and the team is told
(docs/design.md "PGP is checked, not trusted").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from listbot.core.mail.address import AddressError, normalize_address
from listbot.core.mail.pgp_keys import KeyInfo
from listbot.core.mail.sealing import key_problem

_ANGLE = re.compile(r"[^<>]*<([^<>]*)>\s*")
# What gpg's import filter can take as a literal (its expression syntax has `&&`).
_FILTER_SAFE = re.compile(r"[a-z0-9._+-]+@[a-z0-9.-]+")


def uid_address(uid: str) -> str | None:
    """The normalised addr-spec of a user id (`Name <addr>` or a bare `addr`), or None."""
    match = _ANGLE.fullmatch(uid)
    try:
        return normalize_address(match.group(1) if match else uid.strip())
    except AddressError:
        return None


def key_addresses(key: KeyInfo) -> frozenset[str]:
    return frozenset(a for a in (uid_address(u) for u in key.uids) if a is not None)


def keys_for(address: str, keys: Iterable[KeyInfo]) -> tuple[KeyInfo, ...]:
    return tuple(k for k in keys if address in key_addresses(k))


def encrypts_at(key: KeyInfo, now: datetime) -> bool:
    return key_problem(key, now) is None


def filter_safe(address: str) -> bool:
    """Whether the address can be handed to gpg's keep-uid import filter verbatim."""
    return _FILTER_SAFE.fullmatch(address) is not None


@dataclass(frozen=True)
class KeyChoice:
    fingerprint: str | None  # the attached key to import and use for the sender
    problem: str | None  # why an attached key was not taken; the team is told


def _sender_key(sender: str, attached: Sequence[KeyInfo], now: datetime) -> KeyInfo | str:
    """The one usable attached key with a user id for the sender, or why there is none."""
    if len(attached) > 1:
        # gpg imports a block whole: its other keys would come in beside the chosen one.
        return f"{len(attached)} keys in one attachment from {sender}"
    mine = keys_for(sender, attached)
    if not mine:
        fprs = ", ".join(k.fingerprint for k in attached)
        return f"attached key {fprs} has no user id for the sender {sender}"
    if not encrypts_at(mine[0], now):
        return f"attached key {mine[0].fingerprint} cannot encrypt (expired, revoked or no " \
               "encryption subkey)"
    return mine[0]


def choose_attached(sender: str, attached: Sequence[KeyInfo], known: Sequence[KeyInfo],
                    registered: str | None, now: datetime) -> KeyChoice:
    """The attached key for `sender`, given the keys already in the keyring and the key
    registered for the sender (a member's fingerprint), if any."""
    if not attached:
        return KeyChoice(None, None)
    found = _sender_key(sender, attached, now)
    if isinstance(found, str):
        return KeyChoice(None, found)
    key = found.fingerprint
    earlier = sorted({k.fingerprint for k in keys_for(sender, known)})
    if registered is not None and registered != key:
        problem = f"{sender} has the registered key {registered}"
    elif earlier and key not in earlier:
        problem = f"{sender} already has the key {', '.join(earlier)}"
    elif not filter_safe(sender):
        problem = f"{sender} cannot be matched safely by gpg's import filter"
    else:
        return KeyChoice(key, None)
    return KeyChoice(None, f"attached key {key} ignored: {problem}")


def known_for(address: str, keys: Sequence[KeyInfo], registered: str | None,
              now: datetime) -> str | None:
    """The key to encrypt to `address`: the registered one if it is usable, else the
    oldest usable key whose user id is exactly the address (the first key wins)."""
    if registered is not None:
        return registered if any(k.fingerprint == registered and encrypts_at(k, now)
                                 for k in keys) else None
    usable = sorted((k for k in keys_for(address, keys) if encrypts_at(k, now)),
                    key=lambda k: (k.created, k.fingerprint))
    return usable[0].fingerprint if usable else None
