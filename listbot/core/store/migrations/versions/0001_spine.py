"""The spine: inbound, bodies, outbox, members, audit.

Revision ID: 0001_spine
Revises:
"""

import sqlalchemy as sa
from alembic import op

from listbot.core.store.schema import Id, UTCDateTime

revision = "0001_spine"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("envelope_from", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("list_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("error", sa.Text),
        sa.Column("done_at", UTCDateTime),
    )
    op.create_index("ix_inbound_state_id", "inbound", ["state", "id"])
    op.create_table(
        "bodies",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("body_id", Id, sa.ForeignKey("bodies.id"), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("envelope_from", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("list_name", sa.String(64)),
        sa.Column("case_id", sa.String(64)),
        sa.Column("not_before", UTCDateTime),
        sa.Column("dedupe_key", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_reply", sa.Text),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("sent_at", UTCDateTime),
        sa.UniqueConstraint("dedupe_key", "recipient", name="uq_outbox_dedupe"),
    )
    op.create_index("ix_outbox_state_next", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_recipient_created", "outbox", ["recipient", "created_at"])
    op.create_table(
        "members",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(40)),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("removed_at", UTCDateTime),
        sa.Column("removal_reason", sa.Text),
    )
    current = sa.text("removed_at IS NULL")
    for column in ("address", "name"):
        op.create_index(f"uq_members_current_{column}", "members", [column], unique=True,
                        sqlite_where=current, postgresql_where=current)
    op.create_table(
        "audit",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_subject", "audit", ["subject"])


def downgrade() -> None:
    for table in ("audit", "members", "outbox", "bodies", "inbound"):
        op.drop_table(table)
