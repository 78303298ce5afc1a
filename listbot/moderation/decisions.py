"""The decision-token service: people decide on held items by replying to e-mail.

Generic over the kind of item (a held discuss post, an application, ...); the
caller owns the item and what a decision does to it. The rules it keeps:
docs/design.md "Moderator decisions: authenticated, single-use, first-wins".

Interface
---------
``issue(tx, kind=, item_id=, list_name=, issued_to=, expires_at=, token=None)``
    Opens the item for decision (once) and stores a reply token (128 bits from
    ``secrets``, made here or by ``new_reply_token()`` beforehand) for one
    decider; returns ``IssuedToken``. Only the token's SHA-256 digest is stored;
    put ``IssuedToken.token`` in the reply address (``<list>-mod+TOKEN@domain``, see
    ``ListConfig.decisions_local``) and forget it. Tokens issued before were 192 bits
    (39 characters); they are looked up by digest just the same.
``lookup(tx, token, kind=, list_name=) -> TokenRecord | None``
    The stored record of a token, by digest (None when unknown or malformed).
``read_reply(raw or view, record, authority=, keyring=, now=, verbs=) -> Reply | Ignore``
    The slow part, outside any transaction: is the token live and unused, is the
    sender (strict From) an authorized decider for the token's list and the one it
    was issued to, and - when ``authority.require_signature`` - is the message
    PGP-signed by that person's registered key (allowlist = that one fingerprint)
    over the part that carries the command? The command is re-read from the
    signed content and must be the same. Anything else is ``Ignore(reason)``.
``apply(tx, reply) -> Decided | AlreadyDecided | Ignore``
    Inside the caller's transaction: spends the token (conditional UPDATE, unused
    and unexpired) and claims the item (conditional UPDATE ``state = 'open'``).
    Exactly one decision wins, even across daemons; a later one gets
    ``AlreadyDecided(by, at, verb)`` to answer "already decided by X at T".
``decide(tx, kind=, item_id=, decider=, verb=, reason=) -> Decided | AlreadyDecided``
    The same first-wins claim without a token (the command line).
``item_state(tx, kind, item_id)`` reads who decided what.

Everything here audits nothing itself: the caller writes the audit row with
the item-specific effects, in the same transaction.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from listbot.core.config import Config, ListConfig
from listbot.core.mail.pgp import Keyring
from listbot.core.mail.pgp_mime import canonical, verify_view
from listbot.core.mail.view import MessageView
from listbot.core.store import Store, Tx
from listbot.core.store import decisions as ops
from listbot.core.store.decisions import ItemRecord, TokenRecord
from listbot.moderation.commands import Command, Ignored, command_source, parse_reply

__all__ = [
    "AlreadyDecided",
    "Authority",
    "Decided",
    "Ignore",
    "IssuedToken",
    "ItemRecord",
    "Reply",
    "TokenRecord",
    "apply",
    "decide",
    "issue",
    "item_state",
    "lookup",
    "new_reply_token",
    "read_reply",
]


# 128 bits: unguessable, and short enough that the reply address fits the 64 octets
# of an RFC 5321 local part together with the list's decision address.
TOKEN_BYTES = 16  # core/config/addresses.py REPLY_TOKEN_CHARS counts its characters


def new_reply_token() -> str:
    """128 CSPRNG bits as lower-case base32 (26 characters of [a-z2-7]).

    Mail systems fold the case of addresses (listbot's own intake lower-cases every
    recipient), so a token in a sub-address must survive case folding intact.
    """
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").rstrip(
        "=").lower()


def token_digest(token: str) -> str:
    """What the store keeps of a token: it never holds the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str  # goes into the reply address only; never stored, never logged
    token_id: int
    expires_at: datetime


@dataclass(frozen=True)
class Authority:
    """Who may decide on one list's items: normalized address -> registered fingerprint."""

    deciders: Mapping[str, str | None]
    require_signature: bool


def authority(cfg: Config, lc: ListConfig) -> Authority:
    """The list's moderators, each with the fingerprint registered for them in [team]."""
    keys = {m.address: m.fingerprint for m in cfg.team_members}
    return Authority({m: keys.get(m) for m in lc.moderators}, lc.require_signed_decisions)


@dataclass(frozen=True)
class Reply:
    token_id: int
    kind: str
    item_id: str
    list_name: str
    decider: str
    verb: str
    argument: str
    signed_by: str | None


@dataclass(frozen=True)
class Ignore:
    reason: str
    sender: str | None = None


@dataclass(frozen=True)
class Decided:
    kind: str
    item_id: str
    decider: str
    verb: str
    reason: str
    at: datetime
    token_id: int | None


@dataclass(frozen=True)
class AlreadyDecided:
    kind: str
    item_id: str
    by: str
    at: datetime
    verb: str

    def text(self) -> str:
        return f"already decided by {self.by} at {self.at:%Y-%m-%d %H:%M} UTC ({self.verb})"


async def issue(tx: Tx, *, kind: str, item_id: str, list_name: str, issued_to: str | None,
                expires_at: datetime, token: str | None = None) -> IssuedToken:
    """`token` lets a caller build (and encrypt) the request mail before the transaction."""
    await ops.open_item(tx, kind, item_id, list_name, tx.now)
    token = (token or new_reply_token()).lower()
    token_id = await ops.insert_token(tx, digest=token_digest(token), kind=kind,
                                      item_id=item_id, list_name=list_name,
                                      issued_to=issued_to, now=tx.now, expires_at=expires_at)
    return IssuedToken(token, token_id, expires_at)


async def lookup(tx: Tx, token: str | None, *, kind: str, list_name: str) -> TokenRecord | None:
    """The token's record, if it was issued for this kind of item on this list."""
    if not token or len(token) > 64:
        return None
    record = await ops.find_token(tx, token_digest(token.strip().lower()))
    if record is None or record.kind != kind or record.list_name != list_name:
        return None  # a token of another list or service is no token here
    return record


async def item_state(tx: Tx, kind: str, item_id: str) -> ItemRecord | None:
    return await ops.get_item(tx, kind, item_id)


def _sender(view: MessageView) -> str | None:
    # A hostile From reads as no sender (the reply is ignored), never as an error.
    box = view.sender
    return box.normalized if box is not None else None


def _precheck(record: TokenRecord | None, sender: str | None, authority: Authority,
              now: datetime) -> str | None:
    """Why the token or the sender disqualify a reply before it is even read."""
    if record is None:
        return "unknown token"
    if record.expires_at <= now:
        return "token expired"
    if sender is None:
        return "no single valid From address"
    if sender not in authority.deciders:
        return "sender is not a decider of this list"
    if record.issued_to is not None and record.issued_to != sender:
        return "token was issued to someone else"
    return None


async def reply_to_token(store: Store, token: str | None, raw: bytes | MessageView, *,
                         kind: str, list_name: str, authority: Authority,
                         keyring: Keyring | None, now: datetime,
                         verbs: Collection[str]) -> tuple[int | None, Reply | Ignore]:
    """A reply to a decision request, read against its token: (token id, what it says)."""
    async with store.read() as tx:
        record = await lookup(tx, token, kind=kind, list_name=list_name)
    reply = await read_reply(raw, record, authority=authority, keyring=keyring, now=now,
                             verbs=verbs)
    return (record.id if record else None), reply


async def read_reply(raw: bytes | MessageView, record: TokenRecord | None, *,
                     authority: Authority, keyring: Keyring | None, now: datetime,
                     verbs: Collection[str]) -> Reply | Ignore:
    """`raw` is best the reply's view (`Inbound.view`): then it is not parsed again."""
    view = raw if isinstance(raw, MessageView) else MessageView.parse(raw)
    sender = _sender(view)
    problem = _precheck(record, sender, authority, now)
    if problem is not None or record is None or sender is None:
        return Ignore(problem or "unknown token", sender)
    command = parse_reply(view.raw, verbs, view.tree)
    if isinstance(command, Ignored):
        return Ignore(command.reason, sender)
    signed_by = None
    if authority.require_signature:
        problem = await _signature_problem(view, command, authority.deciders[sender],
                                           keyring, now)
        if problem is not None:
            return Ignore(problem, sender)
        signed_by = authority.deciders[sender]
    return Reply(record.id, record.kind, record.item_id, record.list_name, sender,
                 command.verb, command.argument, signed_by)


async def _signature_problem(view: MessageView, command: Command, fingerprint: str | None,
                             keyring: Keyring | None, now: datetime) -> str | None:
    """Why the command is not covered by a good signature of this decider, or None."""
    if fingerprint is None or keyring is None:
        return "decider has no registered key" if fingerprint is None else "no keyring"
    verification = await verify_view(view, keyring, [fingerprint], now)
    if not verification.valid or verification.signed_content is None:
        return f"not signed by the decider's key: {verification.reason}"
    return _coverage_problem(view, command, verification.signed_content)


def _coverage_problem(view: MessageView, command: Command, covered: bytes) -> str | None:
    """The command must be read again from the signed bytes, and be the same."""
    source = command_source(view.raw, view.tree)
    if source is None:
        return "no text/plain part"
    if source.signed_entity is not None:
        if canonical(source.signed_entity) != canonical(covered):
            return "signature does not cover the command part"
        signed_command = parse_reply(covered, [command.verb])
    else:
        # Inline signature: the covered bytes are the text itself, without headers.
        signed_command = parse_reply(b"\r\n" + covered, [command.verb])
    if signed_command != command:
        return "signed text does not carry the same command"
    return None


async def apply(tx: Tx, reply: Reply) -> Decided | AlreadyDecided | Ignore:
    item = await ops.get_item(tx, reply.kind, reply.item_id)
    if item is None:
        return Ignore("no such item")
    if item.state == ops.DECIDED:
        return _already(item)
    if not await ops.use_token(tx, reply.token_id, reply.decider, tx.now):
        return Ignore("token used or expired")
    return await decide(tx, kind=reply.kind, item_id=reply.item_id, decider=reply.decider,
                        verb=reply.verb, reason=reply.argument, token_id=reply.token_id)


async def decide(tx: Tx, *, kind: str, item_id: str, decider: str, verb: str, reason: str,
                 token_id: int | None = None) -> Decided | AlreadyDecided:
    won = await ops.claim_decision(tx, kind=kind, item_id=item_id, decided_by=decider,
                                   verb=verb, reason=reason, token_id=token_id, now=tx.now)
    if won:
        return Decided(kind, item_id, decider, verb, reason, tx.now, token_id)
    item = await ops.get_item(tx, kind, item_id)
    if item is None or item.state != ops.DECIDED:
        raise LookupError(f"{kind} {item_id} is not open for decision")
    return _already(item)


def _already(item: ItemRecord) -> AlreadyDecided:
    assert item.decided_at is not None
    return AlreadyDecided(item.kind, item.item_id, item.decided_by or "?", item.decided_at,
                          item.verb or "?")
