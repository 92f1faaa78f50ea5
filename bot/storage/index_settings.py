"""Which channels are indexed for /search, and where each history backfill stands.

A backfill's checkpoint is written after each page of history is stored, so a
restart resumes from the last page done (at worst a page is embedded twice; the
vector store's upsert keeps one row per image).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import delete, select, update

from bot.storage.db import Database, rows_changed
from bot.storage.models import IndexedChannel

Backfill = Literal["none", "running", "done"]


@dataclass(frozen=True, slots=True)
class ChannelIndex:
    channel_id: int
    guild_id: int
    backfill: Backfill
    model_id: str
    cursor: int | None
    started_from: int | None
    scanned: int
    indexed: int
    repost_alerts: bool = False


def _entry(row: IndexedChannel) -> ChannelIndex:
    return ChannelIndex(
        channel_id=row.channel_id,
        guild_id=row.guild_id,
        backfill=row.backfill,  # type: ignore[arg-type]
        model_id=row.model_id,
        cursor=row.cursor,
        started_from=row.started_from,
        scanned=row.scanned,
        indexed=row.indexed,
        repost_alerts=bool(row.repost_alerts),
    )


class IndexSettings:
    """Indexed channels and backfill checkpoints on a `Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def add(
        self, guild_id: int, channel_id: int, by: int, *, backfill: bool, model_id: str, repost_alerts: bool = False
    ) -> bool:
        """Index a channel (again: its backfill starts over). True if it was not indexed before."""
        async with self.db.session() as session, session.begin():
            row = await session.get(IndexedChannel, channel_id)
            created = row is None
            if row is None:
                row = IndexedChannel(channel_id=channel_id, guild_id=guild_id)
                session.add(row)
            row.added_by, row.added_at = by, datetime.now(UTC)
            row.backfill = "running" if backfill else "none"
            row.model_id = model_id
            row.cursor = row.started_from = None
            row.scanned = row.indexed = 0
            row.repost_alerts = repost_alerts
        return created

    async def set_repost_alerts(self, channel_id: int, enabled: bool) -> bool:
        """Turn repost alerts on or off for an indexed channel; False if it is not indexed."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(IndexedChannel).where(IndexedChannel.channel_id == channel_id).values(repost_alerts=enabled)
            )
            return bool(rows_changed(result))

    async def get(self, channel_id: int) -> ChannelIndex | None:
        async with self.db.session() as session:
            row = await session.get(IndexedChannel, channel_id)
            return None if row is None else _entry(row)

    async def guild(self, guild_id: int) -> list[ChannelIndex]:
        async with self.db.session() as session:
            rows = await session.scalars(select(IndexedChannel).where(IndexedChannel.guild_id == guild_id))
            return [_entry(row) for row in rows]

    async def everywhere(self) -> list[ChannelIndex]:
        """Every indexed channel of every server (the reconcile after downtime)."""
        async with self.db.session() as session:
            return [_entry(row) for row in await session.scalars(select(IndexedChannel))]

    async def running(self) -> list[ChannelIndex]:
        """Backfills not finished (to resume at start-up)."""
        async with self.db.session() as session:
            rows = await session.scalars(select(IndexedChannel).where(IndexedChannel.backfill == "running"))
            return [_entry(row) for row in rows]

    async def all_done_for(self, model_id: str) -> bool:
        """Every indexed channel is on `model_id` with no backfill left (so older models' vectors
        are needed nowhere)."""
        async with self.db.session() as session:
            other = await session.scalar(
                select(IndexedChannel.channel_id)
                .where((IndexedChannel.model_id != model_id) | (IndexedChannel.backfill == "running"))
                .limit(1)
            )
        return other is None

    async def checkpoint(
        self, channel_id: int, *, cursor: int | None, started_from: int | None, scanned: int, indexed: int, done: bool
    ) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(IndexedChannel)
                .where(IndexedChannel.channel_id == channel_id, IndexedChannel.backfill == "running")
                .values(
                    cursor=cursor,
                    started_from=started_from,
                    scanned=scanned,
                    indexed=indexed,
                    backfill="done" if done else "running",
                )
            )

    async def restart_guild(self, guild_id: int, model_id: str) -> int:
        """`/index rebuild`: every indexed channel of the server starts its backfill over for `model_id`."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(IndexedChannel)
                .where(IndexedChannel.guild_id == guild_id)
                .values(backfill="running", model_id=model_id, cursor=None, started_from=None, scanned=0, indexed=0)
            )
            return rows_changed(result)

    async def remove(self, channel_id: int) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(IndexedChannel).where(IndexedChannel.channel_id == channel_id))
            return bool(rows_changed(result))

    async def remove_guild(self, guild_id: int) -> int:
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(IndexedChannel).where(IndexedChannel.guild_id == guild_id))
            return rows_changed(result)
