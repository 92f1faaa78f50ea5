"""Repost alerts, opt-in per indexed channel (`/index add … repost:True`, `/index repost`).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Off for every channel indexed before: alerts post in the channel, so a server turns them on itself.
    with op.batch_alter_table("indexed_channels") as batch:
        batch.add_column(sa.Column("repost_alerts", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("indexed_channels") as batch:
        batch.drop_column("repost_alerts")
