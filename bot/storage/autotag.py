"""Which channels tag their own images (`/autotag`), with their labels, mode and threshold.

Rows go with their channel (`remove`) and with their server (`remove_guild`, and
`PresetStore.forget_guild`, which the reconcile after downtime calls for a server the bot left).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select

from bot.storage.db import Database, rows_changed
from bot.storage.models import AutotagChannel


@dataclass(frozen=True, slots=True)
class AutotagEntry:
    channel_id: int
    guild_id: int
    #: The labels as given, emoji first where there is one (`bot.autotag.parse_tag_labels` splits them).
    labels: tuple[str, ...]
    mode: str
    min_probability: float
    preset: str | None = None


def _entry(row: AutotagChannel) -> AutotagEntry:
    return AutotagEntry(
        channel_id=row.channel_id,
        guild_id=row.guild_id,
        labels=tuple(row.labels.split("\n")),
        mode=row.mode,
        min_probability=row.min_probability,
        preset=row.preset,
    )


class AutotagSettings:
    """Autotagged channels on a `Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def set(self, entry: AutotagEntry) -> bool:
        """Autotag a channel (again: its settings are replaced). True if it was not autotagged before."""
        async with self.db.session() as session, session.begin():
            row = await session.get(AutotagChannel, entry.channel_id)
            created = row is None
            if row is None:
                row = AutotagChannel(channel_id=entry.channel_id)
                session.add(row)
            row.guild_id = entry.guild_id
            row.labels = "\n".join(entry.labels)  # labels never hold a newline (`bot.labels` cleans them)
            row.mode = entry.mode
            row.min_probability = entry.min_probability
            row.preset = entry.preset
            row.added_at = datetime.now(UTC)
        return created

    async def get(self, channel_id: int) -> AutotagEntry | None:
        async with self.db.session() as session:
            row = await session.get(AutotagChannel, channel_id)
            return None if row is None else _entry(row)

    async def guild(self, guild_id: int) -> list[AutotagEntry]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(AutotagChannel).where(AutotagChannel.guild_id == guild_id).order_by(AutotagChannel.channel_id)
            )
            return [_entry(row) for row in rows]

    async def everywhere(self) -> list[AutotagEntry]:
        """Every autotagged channel of every server (loaded at start; the reconcile after downtime)."""
        async with self.db.session() as session:
            return [_entry(row) for row in await session.scalars(select(AutotagChannel))]

    async def remove(self, channel_id: int) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(AutotagChannel).where(AutotagChannel.channel_id == channel_id))
            return bool(rows_changed(result))

    async def remove_guild(self, guild_id: int) -> int:
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(AutotagChannel).where(AutotagChannel.guild_id == guild_id))
            return rows_changed(result)
