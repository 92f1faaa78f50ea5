"""Channels indexed for /search, with each history backfill's checkpoint.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indexed_channels",
        sa.Column("channel_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("added_by", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("backfill", sa.String(8), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=True),
        sa.Column("started_from", sa.BigInteger(), nullable=True),
        sa.Column("scanned", sa.BigInteger(), nullable=False),
        sa.Column("indexed", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_indexed_channels_guild_id", "indexed_channels", ["guild_id"])


def downgrade() -> None:
    op.drop_index("ix_indexed_channels_guild_id", table_name="indexed_channels")
    op.drop_table("indexed_channels")
