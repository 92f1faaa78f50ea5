"""Forgotten authors and images removed by an edit: never indexed again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forgotten_authors",
        sa.Column("author_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "erased_images",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_erased_images_message_id", "erased_images", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_erased_images_message_id", table_name="erased_images")
    op.drop_table("erased_images")
    op.drop_table("forgotten_authors")
