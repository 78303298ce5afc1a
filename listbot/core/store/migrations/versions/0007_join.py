"""Join the feature branches of the schema into one head.

Revision ID: 0007_join
Revises: 0002_cases, 0003_moderation, 0004_advisories, 0005_imap, 0006_applications
"""

revision = "0007_join"
down_revision = ("0002_cases", "0003_moderation", "0004_advisories", "0005_imap",
                 "0006_applications")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
