"""throttling recorded on access_events

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.add_column(sa.Column("throttle_bps", sa.BigInteger()))
        t.add_column(sa.Column("throttled_ms", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.drop_column("throttled_ms")
        t.drop_column("throttle_bps")
