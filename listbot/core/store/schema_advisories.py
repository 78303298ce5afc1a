"""Advisory tables. The advisory row's `state` is the truth about a release."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from listbot.core.store.schema import Id, UTCDateTime, metadata

advisories = Table(
    "advisories",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("case_id", String(64)),
    # draft -> awaiting_confirmation -> scheduled -> released; cancel returns to draft.
    Column("state", String(32), nullable=False),
    Column("embargo_at", UTCDateTime, nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("schedule_sequence", Integer, nullable=False, default=0),
    Column("scheduled_by", Text),
    Column("confirmed_by", Text),
    Column("restrictive", Integer, nullable=False, default=0),
    Column("released_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    Index("ix_advisories_state_embargo", "state", "embargo_at"),
)

advisory_versions = Table(
    "advisory_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("number", Integer, ForeignKey("advisories.number"), nullable=False),
    Column("version", Integer, nullable=False),
    # The advisory's content as JSON (title, cves, sections, updates, patches in base64).
    Column("doc", Text, nullable=False),
    # The exact bytes that go out, signed once when rendered: show == sent.
    Column("predisclosure_raw", LargeBinary),
    Column("public_raw", LargeBinary, nullable=False),
    Column("rendered_embargo_at", UTCDateTime, nullable=False),
    Column("predisclosed_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=False),
    UniqueConstraint("number", "version", name="uq_advisory_versions"),
)
