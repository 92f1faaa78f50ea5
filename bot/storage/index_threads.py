"""Threads (and forum posts) of indexed channels, and where each one's history backfill stands.

A thread's images are stored under the thread's id as their channel; this table says
which indexed channel each thread belongs to and whether it is private, so deleting or
un-indexing the channel deletes them, and /search shows them only to who may see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select, update

from bot.storage.db import Database, rows_changed
from bot.storage.models import IndexedThread

ThreadBackfill = Literal["none", "running", "done"]


@dataclass(frozen=True, slots=True)
class ThreadIndex:
    thread_id: int
    parent_id: int
    guild_id: int
    private: bool
    backfill: ThreadBackfill
    cursor: int | None = None
    scanned: int = 0
    indexed: int = 0


def _entry(row: IndexedThread) -> ThreadIndex:
    return ThreadIndex(
        thread_id=row.thread_id,
        parent_id=row.parent_id,
        guild_id=row.guild_id,
        private=row.private,
        backfill=row.backfill,  # type: ignore[arg-type]
        cursor=row.cursor,
        scanned=row.scanned,
        indexed=row.indexed,
    )


class IndexThreads:
    """Indexed threads and their backfill checkpoints on a `Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def add(self, thread_id: int, parent_id: int, guild_id: int, *, private: bool, backfill: bool) -> ThreadIndex:
        """Record a thread (kept as it is if known: a backfill found again does not start over)."""
        async with self.db.session() as session, session.begin():
            row = await session.get(IndexedThread, thread_id)
            if row is None:
                row = IndexedThread(
                    thread_id=thread_id,
                    parent_id=parent_id,
                    guild_id=guild_id,
                    private=private,
                    backfill="running" if backfill else "none",
                    cursor=None,
                    scanned=0,
                    indexed=0,
                )
                session.add(row)
            elif backfill and row.backfill == "none":
                row.backfill = "running"  # met live first, its history is now wanted
            return _entry(row)

    async def get(self, thread_id: int) -> ThreadIndex | None:
        async with self.db.session() as session:
            row = await session.get(IndexedThread, thread_id)
            return None if row is None else _entry(row)

    async def of_parent(self, parent_id: int) -> list[ThreadIndex]:
        async with self.db.session() as session:
            rows = await session.scalars(select(IndexedThread).where(IndexedThread.parent_id == parent_id))
            return [_entry(row) for row in rows]

    async def guild(self, guild_id: int) -> list[ThreadIndex]:
        async with self.db.session() as session:
            rows = await session.scalars(select(IndexedThread).where(IndexedThread.guild_id == guild_id))
            return [_entry(row) for row in rows]

    async def everywhere(self) -> list[ThreadIndex]:
        async with self.db.session() as session:
            return [_entry(row) for row in await session.scalars(select(IndexedThread))]

    async def checkpoint(self, thread_id: int, *, cursor: int | None, scanned: int, indexed: int, done: bool) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(IndexedThread)
                .where(IndexedThread.thread_id == thread_id)
                .values(cursor=cursor, scanned=scanned, indexed=indexed, backfill="done" if done else "running")
            )

    async def restart_parents(self, parent_ids: Iterable[int]) -> int:
        """Their threads' backfills start over (`/index add` again, `/index rebuild`)."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(IndexedThread)
                .where(IndexedThread.parent_id.in_(list(parent_ids)))
                .values(backfill="running", cursor=None, scanned=0, indexed=0)
            )
            return rows_changed(result)

    async def remove(self, thread_id: int) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(IndexedThread).where(IndexedThread.thread_id == thread_id))
            return bool(rows_changed(result))

    async def remove_parent(self, parent_id: int) -> list[int]:
        """Forget every thread of a channel; their ids (whose images are to be deleted)."""
        async with self.db.session() as session, session.begin():
            ids = list(
                await session.scalars(select(IndexedThread.thread_id).where(IndexedThread.parent_id == parent_id))
            )
            await session.execute(delete(IndexedThread).where(IndexedThread.parent_id == parent_id))
            return ids

    async def remove_guild(self, guild_id: int) -> int:
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(IndexedThread).where(IndexedThread.guild_id == guild_id))
            return rows_changed(result)
