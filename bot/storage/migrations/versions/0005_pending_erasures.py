"""A forgotten author's erasure from the image index, pending until it ran; the servers the bot
is a member of (for the reconcile after downtime).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: not yet deleted from the image index (rows from before this column run once more: harmless).
    op.add_column("forgotten_authors", sa.Column("index_erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "joined_guilds",
        sa.Column("guild_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("joined_guilds")
    op.drop_column("forgotten_authors", "index_erased_at")
