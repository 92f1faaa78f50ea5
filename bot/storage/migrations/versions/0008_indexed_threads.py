"""Threads and forum posts of indexed channels: parent, private flag, backfill checkpoint.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indexed_threads",
        sa.Column("thread_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("backfill", sa.String(8), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=True),
        sa.Column("scanned", sa.BigInteger(), nullable=False),
        sa.Column("indexed", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_indexed_threads_parent_id", "indexed_threads", ["parent_id"])
    op.create_index("ix_indexed_threads_guild_id", "indexed_threads", ["guild_id"])


def downgrade() -> None:
    op.drop_index("ix_indexed_threads_guild_id", table_name="indexed_threads")
    op.drop_index("ix_indexed_threads_parent_id", table_name="indexed_threads")
    op.drop_table("indexed_threads")
