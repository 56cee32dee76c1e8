"""media usage per person per day; media seconds on access_events

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.add_column(sa.Column("media_seconds", sa.Float()))
    op.create_table(
        "media_usage",
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("media_usage")
    with op.batch_alter_table("access_events") as t:
        t.drop_column("media_seconds")
