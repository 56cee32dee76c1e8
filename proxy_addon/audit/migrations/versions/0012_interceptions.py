"""interception orders: one person's correspondence decrypted for a recorded
concern, time-limited

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table(
        "interceptions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("ordered_by", sa.String(255), nullable=False),
        sa.Column("ordered_role", sa.String(32), nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_interceptions_ends_at", "interceptions", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_interceptions_ends_at", "interceptions")
    op.drop_table("interceptions")
