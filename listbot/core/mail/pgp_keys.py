"""PGP keys as gpg lists them: fingerprints, keys and subkeys with their validity."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from listbot.core.clock import ensure_utc
from listbot.core.errors import PGPError

_FPR_RE = re.compile(r"[0-9A-F]{40}(?:[0-9A-F]{24})?")


def normalise_fingerprint(value: str) -> str:
    """Upper-case hex without spaces; raises PGPError if it is not a fingerprint."""
    fpr = "".join(value.split()).upper()
    if not _FPR_RE.fullmatch(fpr):
        raise PGPError("not a key fingerprint")
    return fpr


@dataclass(frozen=True)
class SubkeyInfo:
    fingerprint: str
    created: datetime
    expires: datetime | None
    can_encrypt: bool
    can_sign: bool
    revoked: bool

    def usable_at(self, now: datetime) -> bool:
        return not self.revoked and (self.expires is None or ensure_utc(now) < self.expires)


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    uids: tuple[str, ...]
    created: datetime
    expires: datetime | None
    can_encrypt: bool  # gpg's view of the whole key (some usable subkey), at the real time
    can_sign: bool
    revoked: bool
    has_secret: bool | None  # None: not asked (Keyring.key_info(check_secret=True) asks)
    subkeys: tuple[SubkeyInfo, ...] = ()

    def usable_at(self, now: datetime) -> bool:
        """Not revoked and not expired at `now` (creation time is not checked)."""
        return not self.revoked and (self.expires is None or ensure_utc(now) < self.expires)

    def expires_within(self, now: datetime, window: timedelta) -> bool:
        return self.expires is not None and self.expires <= ensure_utc(now) + window

    def signing_key(self, fingerprint: str) -> SubkeyInfo | None:
        """The primary key or a subkey of this key, by fingerprint, as a SubkeyInfo."""
        if fingerprint == self.fingerprint:
            return SubkeyInfo(
                self.fingerprint, self.created, self.expires,
                self.can_encrypt, self.can_sign, self.revoked,
            )  # fmt: skip
        return next((s for s in self.subkeys if s.fingerprint == fingerprint), None)


def gpg_time(epoch: str) -> datetime | None:
    return datetime.fromtimestamp(int(epoch), UTC) if epoch.strip() else None


def key_info_from_listing(raw: dict[str, Any], secret_fprs: Collection[str] | None) -> KeyInfo:
    subkeys = []
    for keyid, sub in raw.get("subkey_info", {}).items():
        fpr = sub.get("fingerprint") or next(
            (s[2] for s in raw.get("subkeys", []) if s[0] == keyid), ""
        )
        subkeys.append(
            SubkeyInfo(
                fingerprint=str(fpr),
                created=gpg_time(sub["date"]) or datetime.min.replace(tzinfo=UTC),
                expires=gpg_time(sub.get("expires", "")),
                can_encrypt="e" in sub.get("cap", ""),
                can_sign="s" in sub.get("cap", ""),
                revoked=sub.get("trust") == "r",
            )
        )
    cap = raw.get("cap", "")
    return KeyInfo(
        fingerprint=raw["fingerprint"],
        uids=tuple(raw.get("uids", ())),
        created=gpg_time(raw["date"]) or datetime.min.replace(tzinfo=UTC),
        expires=gpg_time(raw.get("expires", "")),
        can_encrypt="E" in cap,
        can_sign="S" in cap,
        revoked=raw.get("trust") == "r",
        has_secret=None if secret_fprs is None else raw["fingerprint"] in secret_fprs,
        subkeys=tuple(subkeys),
    )
