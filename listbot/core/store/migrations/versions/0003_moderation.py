"""Moderation: decision items and tokens, held posts.

Revision ID: 0003_moderation
Revises: 0001_spine
"""

import sqlalchemy as sa
from alembic import op

from listbot.core.store.schema import Id, UTCDateTime

revision = "0003_moderation"
down_revision = "0001_spine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_items",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("list_name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("verb", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("token_id", Id),
        sa.UniqueConstraint("kind", "item_id", name="uq_decision_items_item"),
    )
    op.create_table(
        "decision_tokens",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("list_name", sa.String(64), nullable=False),
        sa.Column("issued_to", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime),
        sa.Column("used_by", sa.Text),
    )
    op.create_index("ix_decision_tokens_item", "decision_tokens", ["kind", "item_id"])
    op.create_table(
        "held_posts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("list_name", sa.String(64), nullable=False),
        sa.Column("inbound_id", Id, nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("hits", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("held_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("reminded_at", UTCDateTime),
        sa.Column("expired_noted_at", UTCDateTime),
        sa.Column("requests_sent", sa.Integer, nullable=False),
        sa.UniqueConstraint("inbound_id", name="uq_held_posts_inbound"),
    )
    op.create_index("ix_held_posts_state", "held_posts", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_table("held_posts")
    op.drop_table("decision_tokens")
    op.drop_table("decision_items")
