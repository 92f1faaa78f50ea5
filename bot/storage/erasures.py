"""What must never be indexed again: forgotten authors, and images an edit removed.

Kept in the database, so a restart, a resumed backfill or `/index rebuild` does not
bring back what someone asked to forget; `SearchService.store_images` asks here before
any vector is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.storage.db import Database
from bot.storage.models import ErasedImage, ForgottenAuthor
from bot.storage.vectors import ImageRef


class Erasures:
    """Forgotten authors and erased images on a `Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def _insert(self, model: type[ForgottenAuthor] | type[ErasedImage]) -> Any:
        """This database's INSERT, which offers "leave a row already there alone" (another
        process may have written it): both dialects' `on_conflict_do_nothing`."""
        insert = postgresql_insert if self.db.backend == "postgresql" else sqlite_insert
        return insert(model)

    async def forget_author(self, author_id: int) -> None:
        """Never index this person's images again, and record their erasure from the index as
        pending (`index_erased` marks it done): asking again erases again."""
        now = datetime.now(UTC)
        statement = self._insert(ForgottenAuthor).values(author_id=author_id, forgotten_at=now, index_erased_at=None)
        statement = statement.on_conflict_do_update(
            index_elements=[ForgottenAuthor.author_id], set_={"forgotten_at": now, "index_erased_at": None}
        )
        async with self.db.session() as session, session.begin():
            await session.execute(statement)

    async def index_erased(self, author_id: int) -> None:
        """This person's images were deleted from the image index: their erasure is no longer pending."""
        statement = (
            update(ForgottenAuthor)
            .where(ForgottenAuthor.author_id == author_id)
            .values(index_erased_at=datetime.now(UTC))
        )
        async with self.db.session() as session, session.begin():
            await session.execute(statement)

    async def pending(self) -> list[int]:
        """Forgotten authors whose images the image index may still hold (it could not be reached)."""
        async with self.db.session() as session:
            query = select(ForgottenAuthor.author_id).where(ForgottenAuthor.index_erased_at.is_(None))
            return list(await session.scalars(query))

    async def erase_images(self, images: Iterable[tuple[int, str]]) -> None:
        """Never index these images again: (message id, image key) each, removed by an edit."""
        now = datetime.now(UTC)
        rows = [{"key": key, "message_id": message_id, "erased_at": now} for message_id, key in set(images)]
        if rows:
            async with self.db.session() as session, session.begin():
                await session.execute(self._insert(ErasedImage).values(rows).on_conflict_do_nothing())

    async def blocked(self, refs: Iterable[ImageRef]) -> set[str]:
        """The keys of `refs` that must not be stored: a forgotten author's, or erased by an edit."""
        refs = list(refs)
        if not refs:
            return set()
        authors = {ref.author_id for ref in refs}
        messages = {ref.message_id for ref in refs}
        async with self.db.session() as session:
            forgotten = set(
                await session.scalars(select(ForgottenAuthor.author_id).where(ForgottenAuthor.author_id.in_(authors)))
            )
            erased = set(await session.scalars(select(ErasedImage.key).where(ErasedImage.message_id.in_(messages))))
        return {ref.key for ref in refs if ref.author_id in forgotten or ref.key in erased}
