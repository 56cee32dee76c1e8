"""the writer's journal position, recorded with every batch so that a restart
replays exactly the journaled events the database lacks

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_chains", sa.Column("journaled", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_chains", "journaled")
