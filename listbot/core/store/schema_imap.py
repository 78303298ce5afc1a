"""IMAP intake bookkeeping: which mailbox UIDs were stored (per UIDVALIDITY)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, UniqueConstraint

from listbot.core.store.schema import Id, UTCDateTime, metadata

imap_seen = Table(
    "imap_seen",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # host/user/folder: one listbot may read several mailboxes.
    Column("mailbox", Text, nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("inbound_id", Id),  # NULL: refused (e.g. bare CR) or a duplicate of another copy
    Column("outcome", String(16), nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_imap_seen_uid"),
    Index("ix_imap_seen_hash", "mailbox", "content_hash"),
    Index("ix_imap_seen_msgid", "mailbox", "message_id"),
)
