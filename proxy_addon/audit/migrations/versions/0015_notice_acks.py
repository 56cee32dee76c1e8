"""acknowledgements of the acceptable-use notice

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId, UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_acks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(64), nullable=True),
    )
    op.create_index("ix_notice_acks_ts", "notice_acks", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_notice_acks_ts", "notice_acks")
    op.drop_table("notice_acks")
