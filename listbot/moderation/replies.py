"""One handler for decisions by reply (<list>-moderation+TOKEN@domain), whatever the
kind of item decided: a held discuss post, an application. The kind says what the
item is called and what a won decision does to it; the token checks, the first-wins
claim and the answers to late or ignored replies are the same for every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from listbot.core.clock import Clock
from listbot.core.config import ListConfig
from listbot.core.mail.pgp import Keyring
from listbot.core.model import Inbound, OutgoingMessage
from listbot.core.store import Store, Tx
from listbot.core.worker import Effects, OneByOne
from listbot.moderation import decisions
from listbot.moderation.decisions import AlreadyDecided, Authority, Decided, Ignore, Reply

log = structlog.get_logger("listbot.moderation")


@dataclass(frozen=True)
class ItemKind:
    """How a kind of item is named: in the decision store, answers and audit rows."""

    name: str  # the decision store's kind ("held-post", "application")
    verbs: tuple[str, ...]
    noun: str  # in answers: "Held post 7 was approved by ..."
    action: str  # audit action prefix ("moderation", "application")
    subject: str  # audit subject prefix ("held", "application")


class DecidedItems(Protocol):
    """The service that owns the items of one kind on one list."""

    item_kind: ItemKind
    lc: ListConfig
    store: Store
    clock: Clock
    keyring: Keyring | None
    authority: Authority

    def answer(self, *, to: str, item_id: str, text: str, now: datetime) -> OutgoingMessage:
        """Mail to a decider whose reply was refused or came too late."""
        ...

    async def refused(self, tx: Tx, reply: Reply) -> bool:
        """Whether the item cannot be decided now; then the decider was answered and
        the token stays unspent."""
        ...

    async def carry_out_reply(self, tx: Tx, reply: Reply, decided: Decided, via: str) -> None:
        """What the won decision does to the item, in the deciding transaction."""
        ...


class DecisionReplies(OneByOne):
    """Replies carrying a decision token, for one kind of item on one list."""

    def __init__(self, items: DecidedItems) -> None:
        self.items = items

    async def decide(self, msg: Inbound) -> Effects:
        items, kind = self.items, self.items.item_kind
        token_id, reply = await decisions.reply_to_token(
            items.store, msg.detail, msg.view, kind=kind.name, list_name=items.lc.name,
            authority=items.authority, keyring=items.keyring, now=items.clock.now(),
            verbs=kind.verbs)
        if isinstance(reply, Ignore):
            log.info(f"{kind.action}.reply_ignored", inbound_id=msg.id, reason=reply.reason)
            return Effects.audit_only(msg, f"{kind.action}.reply_ignored",
                                      {"reason": reply.reason, "sender": reply.sender,
                                       "token_id": token_id, "recipient": msg.recipient})
        return Effects.call(self.settle, reply, msg.id)

    async def settle(self, tx: Tx, reply: Reply, inbound_id: int) -> None:
        """Spend the token and claim the item; the winner carries the decision out."""
        items, kind = self.items, self.items.item_kind
        if await items.refused(tx, reply):
            return
        subject = f"{kind.subject}:{reply.item_id}"
        result = await decisions.apply(tx, reply)
        if isinstance(result, Ignore):
            await tx.audit("listbot", f"{kind.action}.reply_ignored", subject,
                           {"reason": result.reason, "sender": reply.decider,
                            "token_id": reply.token_id, "inbound": inbound_id})
        elif isinstance(result, AlreadyDecided):
            await tx.enqueue(items.answer(
                to=reply.decider, item_id=reply.item_id, now=tx.now,
                text=f"{kind.noun} {reply.item_id} was {result.text()}.\n"))
            await tx.audit(reply.decider, f"{kind.action}.already_decided", subject,
                           {"token_id": reply.token_id, "by": result.by,
                            "at": result.at.isoformat(), "verb": reply.verb})
        else:
            await items.carry_out_reply(tx, reply, result,
                                        "signed reply" if reply.signed_by else "reply")
