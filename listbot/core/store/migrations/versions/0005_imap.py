"""IMAP intake: UIDs stored per mailbox and UIDVALIDITY.

Revision ID: 0005_imap
Revises: 0001_spine
"""

import sqlalchemy as sa
from alembic import op

from listbot.core.store.schema import Id, UTCDateTime

revision = "0005_imap"
down_revision = "0001_spine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imap_seen",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("mailbox", sa.Text, nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("inbound_id", Id),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_imap_seen_uid"),
    )
    op.create_index("ix_imap_seen_hash", "imap_seen", ["mailbox", "content_hash"])
    op.create_index("ix_imap_seen_msgid", "imap_seen", ["mailbox", "message_id"])


def downgrade() -> None:
    op.drop_table("imap_seen")
