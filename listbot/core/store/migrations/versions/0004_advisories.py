"""Advisories and their signed versions.

Revision ID: 0004_advisories
Revises: 0001_spine
"""

import sqlalchemy as sa
from alembic import op

from listbot.core.store.schema import Id, UTCDateTime

revision = "0004_advisories"
down_revision = "0001_spine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("case_id", sa.String(64)),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("embargo_at", UTCDateTime, nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("schedule_sequence", sa.Integer, nullable=False),
        sa.Column("scheduled_by", sa.Text),
        sa.Column("confirmed_by", sa.Text),
        sa.Column("restrictive", sa.Integer, nullable=False),
        sa.Column("released_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_index("ix_advisories_state_embargo", "advisories", ["state", "embargo_at"])
    op.create_table(
        "advisory_versions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("number", sa.Integer, sa.ForeignKey("advisories.number"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("predisclosure_raw", sa.LargeBinary),
        sa.Column("public_raw", sa.LargeBinary, nullable=False),
        sa.Column("rendered_embargo_at", UTCDateTime, nullable=False),
        sa.Column("predisclosed_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.UniqueConstraint("number", "version", name="uq_advisory_versions"),
    )


def downgrade() -> None:
    op.drop_table("advisory_versions")
    op.drop_index("ix_advisories_state_embargo", "advisories")
    op.drop_table("advisories")
