"""report indexes that hold every column their queries read, including the
partial condition's own column, so SQLite answers from the index alone

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
REPORT_INDEXES = (  # as they were at this revision (migrations never read the live models' lists)
    ("ix_access_events_blocks2", ("ts", "category", "host", "rule", "action"), "action = 'block'"),
    ("ix_access_events_media2", ("ts", "media_seconds", "bytes_out"), "media_seconds IS NOT NULL"),
    ("ix_access_events_search2", ("ts", "search_terms"), "search_terms IS NOT NULL"),
    ("ix_access_events_ooh2", ("ts", "user", "out_of_hours"), "out_of_hours = true"),
)
OLD = ("ix_access_events_blocks", "ix_access_events_media", "ix_access_events_search", "ix_access_events_ooh")


def upgrade() -> None:
    for name in OLD:
        op.drop_index(name, "access_events")
    for name, cols, where in REPORT_INDEXES:
        op.create_index(name, "access_events", list(cols), sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in REPORT_INDEXES:
        op.drop_index(name, "access_events")
