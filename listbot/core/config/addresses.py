"""The addresses listbot writes into mail and expects replies at, measured at load.

A reply address that a mail server cannot receive fails silently far away (the
moderator's reply bounces, or listbot itself answers 550), so check-config refuses
a configuration whose longest generated address breaks RFC 5321's limits.
"""

from __future__ import annotations

from listbot.core.config.model import ListConfig, ListKind, TeamMember

MAX_LOCAL_PART = 64  # octets, RFC 5321 4.5.3.1.1
MAX_ADDRESS = 254  # octets of the whole path, RFC 5321 4.5.3.1.3 less the brackets
# A decision token in a reply address: 128 bits as base32 without padding.
REPLY_TOKEN_CHARS = 26


def decisions_reply_address(lc: ListConfig) -> str:
    """The longest decision address of the list (the token is always this long)."""
    return f"{lc.decisions_local}+{'x' * REPLY_TOKEN_CHARS}@{lc.domain}"


def bounces_address(lc: ListConfig) -> str:
    return f"{lc.local_part}-bounces@{lc.domain}"


def too_long(address: str) -> str | None:
    """Why a mail server would refuse `address`, or None."""
    local, _, _ = address.rpartition("@")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        return (f"its local part has {len(local.encode('utf-8'))} octets, "
                f"over the {MAX_LOCAL_PART} mail servers accept (RFC 5321)")
    if len(address.encode("utf-8")) > MAX_ADDRESS:
        return (f"it has {len(address.encode('utf-8'))} octets, "
                f"over the {MAX_ADDRESS} mail servers accept (RFC 5321)")
    return None


def address_problems(path: str, lc: ListConfig) -> list[str]:
    """The list's generated reply addresses that cannot be received, with the key to fix."""
    out = []
    decisions = decisions_reply_address(lc)
    if why := too_long(decisions):
        shown = decisions.replace("x" * REPLY_TOKEN_CHARS, f"<{REPLY_TOKEN_CHARS}-char token>")
        out.append(f"{path}.decisions_local_part: the reply address {shown} cannot be "
                   f"received: {why}; set a shorter decisions_local_part")
    if why := too_long(bounces_address(lc)):
        out.append(f"{path}.address: its bounce address {bounces_address(lc)} cannot be "
                   f"received: {why}")
    return out


def unkeyed_deciders(lc: ListConfig,
                     members: tuple[TeamMember, ...]) -> list[tuple[str, str]]:
    """(key path, address) of each decider without a key where decisions must be signed.

    A discuss list's deciders are its moderators; an applications list's are the
    whole team. A moderator outside the team has no key to register; doctor warns
    about them, and the gate never sends them a held post.
    """
    if not lc.require_signed_decisions:
        return []
    keyed = {m.address: m.fingerprint is not None for m in members}
    if lc.kind is ListKind.APPLICATIONS:
        return [(f"team.members[{i}].fingerprint", m.address) for i, m in enumerate(members)
                if m.fingerprint is None]
    return [(f"lists.{lc.name}.moderators[{i}]", m) for i, m in enumerate(lc.moderators)
            if keyed.get(m) is False]
