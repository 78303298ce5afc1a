"""Security cases: cases, their messages, outside parties, reminders sent.

Revision ID: 0002_cases
Revises: 0001_spine
"""

import sqlalchemy as sa
from alembic import op

from listbot.core.store.schema import Id, UTCDateTime

revision = "0002_cases"
down_revision = "0001_spine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reporter", sa.Text, nullable=False),
        sa.Column("reporter_fingerprint", sa.String(40)),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("timeline", sa.Text, nullable=False),
        sa.Column("embargo_at", UTCDateTime),
        sa.Column("cve_ids", sa.Text, nullable=False),
        sa.Column("advisory", sa.Text),
        sa.Column("credits", sa.Text, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("patch_attached", sa.Boolean, nullable=False),
        sa.UniqueConstraint("prefix", "year", "seq", name="uq_cases_number"),
    )
    op.create_table(
        "case_messages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("inbound_id", Id),
        sa.Column("message_id", sa.Text),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("encrypted", sa.Boolean, nullable=False),
        sa.Column("plaintext", sa.Text),
    )
    op.create_index("ix_case_messages_case", "case_messages", ["case_id"])
    op.create_index("ix_case_messages_message_id", "case_messages", ["message_id"])
    op.create_table(
        "case_parties",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.Column("removed_at", UTCDateTime),
    )
    op.create_index("uq_case_parties_current", "case_parties", ["case_id", "address"],
                    unique=True, sqlite_where=sa.text("removed_at IS NULL"),
                    postgresql_where=sa.text("removed_at IS NULL"))
    op.create_table(
        "case_reminders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("case_id", "key", name="uq_case_reminders"),
    )


def downgrade() -> None:
    op.drop_table("case_reminders")
    op.drop_index("uq_case_parties_current", table_name="case_parties")
    op.drop_table("case_parties")
    op.drop_index("ix_case_messages_message_id", table_name="case_messages")
    op.drop_index("ix_case_messages_case", table_name="case_messages")
    op.drop_table("case_messages")
    op.drop_table("cases")
