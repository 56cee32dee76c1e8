"""the device's name in each audit row (DfE: "device name or ID")

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("access_events", sa.Column("device", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("access_events", "device")
