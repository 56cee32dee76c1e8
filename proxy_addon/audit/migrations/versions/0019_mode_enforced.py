"""access_events.mode (how the device reached the proxy), .enforced (False: log-only) and the would-block index

Revision ID: 0019
Revises: 0018

Both nullable, added in place (no table rebuild on SQLite): rows written
before keep NULL, and their chain hashes (``audit.chain.LATER``).
"""
import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


WOULD_BLOCK = "action = 'would-block'"


def upgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.add_column(sa.Column("mode", sa.String(16)))
        t.add_column(sa.Column("enforced", sa.Boolean()))
    # the log-only reports' covering index: empty, and free, while nothing is in log-only mode
    op.create_index("ix_access_events_would_block", "access_events", ["ts", "category", "host", "action"],
                    sqlite_where=sa.text(WOULD_BLOCK), postgresql_where=sa.text(WOULD_BLOCK))


def downgrade() -> None:
    op.drop_index("ix_access_events_would_block", "access_events")
    with op.batch_alter_table("access_events") as t:
        t.drop_column("enforced")
        t.drop_column("mode")
