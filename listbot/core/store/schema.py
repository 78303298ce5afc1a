"""Table definitions (SQLAlchemy Core). Migrations in core/store/migrations mirror them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on SQLite (which has no zones) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger ids on PostgreSQL, INTEGER PRIMARY KEY (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

inbound = Table(
    "inbound",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("envelope_from", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("list_name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("detail", Text),
    Column("raw", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64)),
    Column("lease_until", UTCDateTime),
    Column("error", Text),
    Column("done_at", UTCDateTime),
    Index("ix_inbound_state_id", "state", "id"),
)

bodies = Table(
    "bodies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("raw", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("body_id", Id, ForeignKey("bodies.id"), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("envelope_from", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("list_name", String(64)),
    Column("case_id", String(64)),
    Column("not_before", UTCDateTime),
    Column("dedupe_key", Text),
    Column("message_id", Text),
    Column("reason", Text, nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_reply", Text),
    Column("claimed_by", String(64)),
    Column("lease_until", UTCDateTime),
    Column("sent_at", UTCDateTime),
    UniqueConstraint("dedupe_key", "recipient", name="uq_outbox_dedupe"),
    Index("ix_outbox_state_next", "state", "next_attempt_at"),
    Index("ix_outbox_recipient_created", "recipient", "created_at"),
)

members = Table(
    "members",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("fingerprint", String(40)),
    Column("added_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime),
    Column("removal_reason", Text),
    Index("uq_members_current_address", "address", unique=True,
          sqlite_where=Column("removed_at").is_(None),
          postgresql_where=Column("removed_at").is_(None)),
    Index("uq_members_current_name", "name", unique=True,
          sqlite_where=Column("removed_at").is_(None),
          postgresql_where=Column("removed_at").is_(None)),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_audit_subject", "subject"),
)
