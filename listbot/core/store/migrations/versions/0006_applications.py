"""Applications, roster history, key warnings, delivery failures of member addresses.

Revision ID: 0006_applications
Revises: 0001_spine
"""

import sqlalchemy as sa
from alembic import op

from listbot.core.store.schema import Id, UTCDateTime

revision = "0006_applications"
down_revision = "0001_spine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("list_name", sa.String(64), nullable=False),
        sa.Column("org_key", sa.String(255), nullable=False),
        sa.Column("organisation", sa.Text),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("checklist", sa.Text, nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("decided_by", sa.Text),
        sa.Column("decision_reason", sa.Text),
    )
    op.create_index("ix_applications_org", "applications", ["org_key", "state"])
    op.create_index("uq_applications_open", "applications", ["list_name", "org_key"],
                    unique=True, sqlite_where=sa.text("state = 'open'"),
                    postgresql_where=sa.text("state = 'open'"))
    op.create_table(
        "application_messages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("application_id", Id, nullable=False),
        sa.Column("inbound_id", Id, nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("duplicate", sa.Boolean, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("inbound_id", name="uq_application_messages_inbound"),
    )
    op.create_index("ix_application_messages_app", "application_messages", ["application_id"])
    op.create_table(
        "roster_changes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("member_name", sa.Text, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
    )
    op.create_table(
        "key_warnings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(40), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("member_name", sa.Text, nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("fingerprint", "expires_at", name="uq_key_warnings_key"),
    )
    op.create_table(
        "delivery_failures",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("member_name", sa.Text),
        sa.Column("permanent", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("source", "source_id", "address",
                            name="uq_delivery_failures_source"),
    )
    op.create_index("ix_delivery_failures_address", "delivery_failures", ["address", "at"])
    op.create_table(
        "delivery_alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("delivery_alerts", "delivery_failures", "key_warnings", "roster_changes",
                  "application_messages", "applications"):
        op.drop_table(table)
