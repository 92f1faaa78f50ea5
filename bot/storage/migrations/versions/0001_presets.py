"""Label presets and recent label sets.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_presets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scope", "owner_id", "name", name="uq_label_presets_owner_name"),
    )
    op.create_table(
        "recent_label_sets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "guild_id", "labels", name="uq_recent_label_sets_user_guild_labels"),
    )
    op.create_index("ix_recent_label_sets_user_used", "recent_label_sets", ["user_id", "used_at"])


def downgrade() -> None:
    op.drop_index("ix_recent_label_sets_user_used", table_name="recent_label_sets")
    op.drop_table("recent_label_sets")
    op.drop_table("label_presets")
