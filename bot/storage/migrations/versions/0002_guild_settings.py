"""Per-server defaults: template and preset.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("default_template", sa.Text(), nullable=True),
        sa.Column("default_preset", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("guild_settings")
