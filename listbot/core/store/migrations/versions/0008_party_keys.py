"""Outside parties of a case get a key: `case_parties.fingerprint`.

Revision ID: 0008_party_keys
Revises: 0007_join
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_party_keys"
down_revision = "0007_join"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing parties simply have no key yet, as before.
    op.add_column("case_parties", sa.Column("fingerprint", sa.String(40)))


def downgrade() -> None:
    # SQLite (3.35+) drops an unindexed column in place, keeping the partial index.
    op.drop_column("case_parties", "fingerprint")
