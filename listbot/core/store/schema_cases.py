"""Tables of security cases. The migrations 0002_cases and 0008_party_keys mirror them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, UniqueConstraint

from listbot.core.store.schema import Id, UTCDateTime, metadata

cases = Table(
    "cases",
    metadata,
    Column("id", String(64), primary_key=True),  # e.g. SEC-2026-0001
    Column("prefix", String(16), nullable=False),
    Column("year", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reporter", Text, nullable=False),
    Column("reporter_fingerprint", String(40)),
    Column("subject", Text, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("timeline", Text, nullable=False),  # calendar.Timeline.to_dict() as JSON
    Column("embargo_at", UTCDateTime),
    Column("cve_ids", Text, nullable=False, default="[]"),
    Column("advisory", Text),
    Column("credits", Text, nullable=False, default=""),
    Column("notes", Text, nullable=False, default=""),
    Column("patch_attached", Boolean, nullable=False, default=False),
    UniqueConstraint("prefix", "year", "seq", name="uq_cases_number"),
)

case_messages = Table(
    "case_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", String(64), nullable=False),
    Column("inbound_id", Id),
    Column("message_id", Text),  # <id@host> for threading follow-ups into the case
    Column("kind", String(16), nullable=False),  # report, follow_up, team_reply, ...
    Column("sender", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("encrypted", Boolean, nullable=False, default=False),
    Column("plaintext", Text),  # only with [cases] keep_clear_at_rest = "plaintext"
    Index("ix_case_messages_case", "case_id"),
    Index("ix_case_messages_message_id", "message_id"),
)

case_parties = Table(
    "case_parties",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", String(64), nullable=False),
    Column("address", Text, nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("added_at", UTCDateTime, nullable=False),
    Column("added_by", Text, nullable=False),
    Column("removed_at", UTCDateTime),
    # The party's own key (migration 0008_party_keys): its embargoed copies are sealed
    # to it, and held under require_encryption while it is missing.
    Column("fingerprint", String(40)),
    Index("uq_case_parties_current", "case_id", "address", unique=True,
          sqlite_where=Column("removed_at").is_(None),
          postgresql_where=Column("removed_at").is_(None)),
)

# One row per reminder ever sent: the unique key makes each fire exactly once, across
# restarts and with several daemons sharing PostgreSQL.
case_reminders = Table(
    "case_reminders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", String(64), nullable=False),
    Column("key", String(64), nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    UniqueConstraint("case_id", "key", name="uq_case_reminders"),
)
