"""Tables of applications, the public roster history, member key warnings and the
delivery record of member role addresses. Migration 0006_applications mirrors them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, UniqueConstraint

from listbot.core.store.schema import Id, UTCDateTime, metadata

# One application per organisation at a time; follow-ups update it (fields merged,
# checklist re-run). Decided applications stay for the record; a later mail from the
# same organisation opens a new one.
applications = Table(
    "applications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("list_name", String(64), nullable=False),
    Column("org_key", String(255), nullable=False),  # sender domain, or address for freemail
    Column("organisation", Text),
    Column("sender", Text, nullable=False),
    Column("state", String(16), nullable=False),  # open | accepted | rejected
    Column("fields", Text, nullable=False),  # JSON of appcheck.ApplicationFields (merged)
    Column("checklist", Text, nullable=False),  # JSON: [{key, title, status, found, problem}]
    Column("complete", Boolean, nullable=False),
    Column("messages", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", Text),
    Column("decision_reason", Text),
    Index("ix_applications_org", "org_key", "state"),
    # At most one open application per organisation, even with several daemons.
    Index("uq_applications_open", "list_name", "org_key", unique=True,
          sqlite_where=Column("state") == "open", postgresql_where=Column("state") == "open"),
)

application_messages = Table(
    "application_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("application_id", Id, nullable=False),
    Column("inbound_id", Id, nullable=False),
    Column("sender", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id", Text),
    Column("body_hash", String(64), nullable=False),
    Column("duplicate", Boolean, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("inbound_id", name="uq_application_messages_inbound"),
    Index("ix_application_messages_app", "application_id"),
)

# The public change history of the roster ("Added NixOS"): names and dates only.
roster_changes = Table(
    "roster_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("member_name", Text, nullable=False),
    Column("action", String(16), nullable=False),  # added | removed
    Column("text", Text, nullable=False),
    Column("actor", Text, nullable=False),
)

# One warning per key and expiry date: a key extended later gets a new window.
key_warnings = Table(
    "key_warnings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(40), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("member_name", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    UniqueConstraint("fingerprint", "expires_at", name="uq_key_warnings_key"),
)

# Failures to deliver to a member role address: parsed bounces and FAILED outbox rows.
delivery_failures = Table(
    "delivery_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("address", Text, nullable=False),
    Column("member_name", Text),
    Column("permanent", Boolean, nullable=False),
    Column("source", String(16), nullable=False),  # bounce | outbox
    Column("source_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "source_id", "address", name="uq_delivery_failures_source"),
    Index("ix_delivery_failures_address", "address", "at"),
)

delivery_alerts = Table(
    "delivery_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("address", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False),
)
