"""Channels that tag their own images (`/autotag`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autotag_channels",
        sa.Column("channel_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("min_probability", sa.Float(), nullable=False),
        sa.Column("preset", sa.String(32), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_autotag_channels_guild_id", "autotag_channels", ["guild_id"])


def downgrade() -> None:
    op.drop_index("ix_autotag_channels_guild_id", table_name="autotag_channels")
    op.drop_table("autotag_channels")
