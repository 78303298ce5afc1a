"""Which key may speak for an outside party of a case: a pure decision over the keys
gpg read from the file an operator gave, before anything is imported.

A party's key must have a user id whose parsed addr-spec is exactly the party's
address (never a substring: `psirt@vendor.example.evil` is not
`psirt@vendor.example`), and the address must be one gpg's import filter can keep on
its own, so the key brings no names for other addresses into the keyring.
"""

from __future__ import annotations

from collections.abc import Sequence

from listbot.core.mail.pgp_keys import KeyInfo
from listbot.security.reporter_keys import filter_safe, keys_for


def party_key(address: str, scanned: Sequence[KeyInfo]) -> KeyInfo | str:
    """The one key in `scanned` for `address`, or why it cannot be the party's key."""
    if len(scanned) != 1:
        return f"holds {len(scanned)} public keys, not exactly one"
    key = scanned[0]
    if not keys_for(address, scanned):
        return f"key {key.fingerprint} has no user id for {address}"
    if not filter_safe(address):
        return f"{address} cannot be matched safely by gpg's import filter"
    return key
