"""covering partial indexes for the reports (replacing 0005/0006's plain ones)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.models import REPORT_INDEXES

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("ix_access_events_search_ts", "ix_access_events_media_ts", "ix_access_events_ooh_ts"):
        op.drop_index(name, "access_events")
    for name, cols, where in REPORT_INDEXES:
        op.create_index(name, "access_events", list(cols), sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in REPORT_INDEXES:
        op.drop_index(name, "access_events")
