"""a covering partial index for self-reports; drop the (action, ts) index, which
SQLite preferred to the covering partial ones and then read the table row by row

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op


SELF_REPORTS = "action = 'self_report'"

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_access_events_action_ts", "access_events")
    op.create_index("ix_access_events_self_reports", "access_events", ["ts", "category", "action"],
                    sqlite_where=sa.text(SELF_REPORTS), postgresql_where=sa.text(SELF_REPORTS))


def downgrade() -> None:
    op.drop_index("ix_access_events_self_reports", "access_events")
    op.create_index("ix_access_events_action_ts", "access_events", ["action", "ts"])
