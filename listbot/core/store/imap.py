"""IMAP bookkeeping operations (one mailbox = host/user/folder).

A message's UID is claimed, the message stored (inbound row) and the outcome recorded
in ONE transaction; only after its commit is the message flagged/moved on the server.
The claim is an insert-if-absent on the unique (mailbox, uidvalidity, uid) key, so of
two pollers reading the same mailbox exactly one stores the message; the other's
claim does nothing (on PostgreSQL it waits for the winner's commit first). A kill
before the commit leaves nothing behind; a kill after it only repeats the flag. An
unrecorded UID whose bytes are already in the inbound table (same content hash,
source imap; e.g. stored by an older release that committed in two steps) is
recorded as a duplicate instead of being stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update

from listbot.core.model import IMAP_SOURCE
from listbot.core.store.schema import inbound
from listbot.core.store.schema_imap import imap_seen
from listbot.core.store.unit import Unit
from listbot.core.store.upsert import insert_if_absent


@dataclass(frozen=True)
class Seen:
    mailbox: str
    uidvalidity: int
    uid: int
    message_id: str
    content_hash: str
    inbound_id: int | None
    outcome: str  # stored | duplicate | refused (stored, but quarantined)


async def recorded_uids(tx: Unit, mailbox: str, uidvalidity: int,
                        uids: list[int]) -> set[int]:
    if not uids:
        return set()
    result = await tx.conn.execute(select(imap_seen.c.uid).where(
        imap_seen.c.mailbox == mailbox, imap_seen.c.uidvalidity == uidvalidity,
        imap_seen.c.uid.in_(uids)))
    return {int(r[0]) for r in result}


async def already_stored(tx: Unit, mailbox: str, uidvalidity: int,
                         content_hash: str, message_id: str) -> int | None:
    """The inbound id of an earlier copy of these bytes, if any.

    Same bytes from this source: a kill between commit and bookkeeping. Same
    Message-ID under an OLDER UIDVALIDITY: the server renumbered the mailbox (its
    copy may differ in added headers). A Message-ID seen under the current
    UIDVALIDITY is a different delivery and is stored.
    """
    by_hash = await tx.conn.scalar(select(inbound.c.id).where(
        inbound.c.source == IMAP_SOURCE, inbound.c.content_hash == content_hash).limit(1))
    if by_hash is not None:
        return int(by_hash)
    if not message_id:
        return None
    renumbered = await tx.conn.scalar(select(imap_seen.c.inbound_id).where(and_(
        imap_seen.c.mailbox == mailbox, imap_seen.c.message_id == message_id,
        imap_seen.c.uidvalidity != uidvalidity, imap_seen.c.inbound_id.is_not(None))).limit(1))
    return int(renumbered) if renumbered is not None else None


async def claim_uid(tx: Unit, seen: Seen, now: datetime) -> bool:
    """Insert this UID's row if absent; False when it is recorded already (another
    poller took it, or an earlier pass). The unique key decides, not a prior SELECT."""
    return await insert_if_absent(tx, imap_seen, {
        "mailbox": seen.mailbox, "uidvalidity": seen.uidvalidity, "uid": seen.uid,
        "message_id": seen.message_id, "content_hash": seen.content_hash,
        "inbound_id": seen.inbound_id, "outcome": seen.outcome, "seen_at": now},
        keys=("mailbox", "uidvalidity", "uid"))


async def settle_uid(tx: Unit, seen: Seen) -> None:
    """The outcome of a UID claimed in this transaction."""
    await tx.conn.execute(update(imap_seen).where(
        imap_seen.c.mailbox == seen.mailbox, imap_seen.c.uidvalidity == seen.uidvalidity,
        imap_seen.c.uid == seen.uid).values(inbound_id=seen.inbound_id, outcome=seen.outcome))


async def listing(tx: Unit, mailbox: str) -> list[Seen]:
    result = await tx.conn.execute(select(imap_seen).where(imap_seen.c.mailbox == mailbox)
                                   .order_by(imap_seen.c.id))
    return [Seen(r.mailbox, r.uidvalidity, r.uid, r.message_id, r.content_hash,
                 r.inbound_id, r.outcome) for r in result]
