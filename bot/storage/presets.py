"""Label presets (named label sets of a server or a person) and recent label sets.

Every query is awaited on the async engine, never run on the event loop
synchronously. Deleting is immediate: a delete is committed before it returns.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.errors import LabelError
from bot.storage.db import Database, rows_changed
from bot.storage.models import AutotagChannel, GuildSettings, JoinedGuild, LabelPreset, RecentLabelSet

log = logging.getLogger(__name__)

Scope = Literal["guild", "user"]
#: Preset names: what `@name` can refer to inside a label list.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
#: Recent label sets kept per person and place.
RECENT_KEPT = 10
#: Recent label sets are written in batches, at most this often.
FLUSH_EVERY_S = 2.0
#: Presets one person (personal) or one server may hold: the table cannot be grown without bound
#: by one account, and autocomplete stays a short list.
PRESETS_PER_OWNER = 100


class PresetLimitError(LabelError):
    """A new preset past `PRESETS_PER_OWNER` (replacing one is always allowed)."""


@dataclass(frozen=True, slots=True)
class Preset:
    scope: Scope
    owner_id: int
    name: str
    labels: list[str]
    created_by: int

    @property
    def label_text(self) -> str:
        return ", ".join(self.labels)


def check_name(name: str) -> str:
    """A preset name, lower-cased, or a one-line `LabelError`."""
    cleaned = name.strip().removeprefix("@").lower()
    if cleaned in ("everyone", "here"):
        raise LabelError(f"`{cleaned}` is a Discord mention, not a preset name; choose another.")
    if not NAME_PATTERN.match(cleaned):
        raise LabelError(
            "A preset name is 1 to 32 letters, digits, `-` or `_`, starting with a letter or digit (e.g. `animals`)."
        )
    return cleaned


def _preset(row: LabelPreset) -> Preset:
    return Preset(
        scope=row.scope,  # type: ignore[arg-type]
        owner_id=row.owner_id,
        name=row.name,
        labels=row.labels.split("\n"),
        created_by=row.created_by,
    )


class PresetStore:
    """Presets and recent label sets on a `Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database
        #: (user, place) -> (labels, when) noted by `remember`, not yet written.
        self._pending: dict[tuple[int, int], tuple[str, datetime]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def save(self, scope: Scope, owner_id: int, name: str, labels: Sequence[str], by: int) -> bool:
        """Create or replace a preset; True when it is new."""
        name = check_name(name)
        now = datetime.now(UTC)
        async with self.db.session() as session, session.begin():
            row = await session.scalar(
                select(LabelPreset).where(
                    LabelPreset.scope == scope, LabelPreset.owner_id == owner_id, LabelPreset.name == name
                )
            )
            if row is None:
                held = await session.scalar(
                    select(func.count())
                    .select_from(LabelPreset)
                    .where(LabelPreset.scope == scope, LabelPreset.owner_id == owner_id)
                )
                if (held or 0) >= PRESETS_PER_OWNER:
                    whose = "You have" if scope == "user" else "This server has"
                    raise PresetLimitError(
                        f"{whose} {PRESETS_PER_OWNER} presets already, the most allowed; "
                        "delete one first (`/labels delete`) or replace one by saving under its name."
                    )
                session.add(
                    LabelPreset(
                        scope=scope,
                        owner_id=owner_id,
                        name=name,
                        labels="\n".join(labels),
                        created_by=by,
                        updated_at=now,
                    )
                )
                return True
            row.labels = "\n".join(labels)
            row.created_by = by
            row.updated_at = now
            return False

    async def get(self, scope: Scope, owner_id: int, name: str) -> Preset | None:
        async with self.db.session() as session:
            row = await session.scalar(
                select(LabelPreset).where(
                    LabelPreset.scope == scope, LabelPreset.owner_id == owner_id, LabelPreset.name == name.lower()
                )
            )
        return _preset(row) if row is not None else None

    async def owned(self, scope: Scope, owner_id: int) -> list[Preset]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(LabelPreset)
                .where(LabelPreset.scope == scope, LabelPreset.owner_id == owner_id)
                .order_by(LabelPreset.name)
            )
            return [_preset(row) for row in rows]

    async def delete(self, scope: Scope, owner_id: int, name: str) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(LabelPreset).where(
                    LabelPreset.scope == scope, LabelPreset.owner_id == owner_id, LabelPreset.name == name.lower()
                )
            )
        return bool(rows_changed(result))

    async def resolve(self, name: str, user_id: int, guild_id: int | None) -> Preset | None:
        """`@name` for this person here: their own preset first, then the server's."""
        name = name.lower()
        found = await self.get("user", user_id, name)
        if found is None and guild_id is not None:
            found = await self.get("guild", guild_id, name)
        return found

    async def matching(self, prefix: str, user_id: int, guild_id: int | None, limit: int = 25) -> list[Preset]:
        """Presets usable here whose name starts with `prefix` (autocomplete), personal first."""
        prefix = prefix.strip().removeprefix("@").lower()
        owners = [(LabelPreset.scope == "user") & (LabelPreset.owner_id == user_id)]
        if guild_id is not None:
            owners.append((LabelPreset.scope == "guild") & (LabelPreset.owner_id == guild_id))
        condition = owners[0] if len(owners) == 1 else owners[0] | owners[1]
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        async with self.db.session() as session:
            rows = await session.scalars(
                select(LabelPreset)
                .where(condition, LabelPreset.name.like(f"{escaped}%", escape="\\"))
                .order_by(LabelPreset.scope.desc(), LabelPreset.name)  # "user" before "guild"
                .limit(limit)
            )
            return [_preset(row) for row in rows]

    def remember(self, user_id: int, guild_id: int | None, labels: Sequence[str]) -> None:
        """Note a label set someone used (kept: the `RECENT_KEPT` latest per person and place).

        Called after every answer, so it costs nothing there: the set waits in memory and
        `flush` writes everything noted in one transaction, at most every `FLUSH_EVERY_S`
        (started here), before any read of recent sets, and on `close`.
        """
        self._pending[(user_id, guild_id or 0)] = ("\n".join(labels), datetime.now(UTC))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon(), name="recent-label-sets")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_EVERY_S)
        try:
            await self.flush()
        except Exception:  # kept in memory for the next try; never fails a request
            log.warning("Could not store recent label sets", exc_info=True)

    async def flush(self) -> None:
        """Write the label sets noted since the last flush (one upsert and trim per person and place)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        insert = sqlite_insert if self.db.backend == "sqlite" else postgresql_insert
        try:
            async with self.db.engine.begin() as connection:
                for (user_id, place), (text, used_at) in batch.items():
                    upsert = insert(RecentLabelSet).values(
                        user_id=user_id, guild_id=place, labels=text, used_at=used_at
                    )
                    await connection.execute(
                        upsert.on_conflict_do_update(
                            index_elements=["user_id", "guild_id", "labels"], set_={"used_at": used_at}
                        )
                    )
                    keep = (
                        select(RecentLabelSet.id)
                        .where(RecentLabelSet.user_id == user_id, RecentLabelSet.guild_id == place)
                        .order_by(RecentLabelSet.used_at.desc(), RecentLabelSet.id.desc())
                        .limit(RECENT_KEPT)
                    )
                    await connection.execute(
                        delete(RecentLabelSet).where(
                            RecentLabelSet.user_id == user_id,
                            RecentLabelSet.guild_id == place,
                            RecentLabelSet.id.not_in(keep.scalar_subquery()),
                        )
                    )
        except BaseException:
            for key, value in batch.items():  # newer notes win
                self._pending.setdefault(key, value)
            raise

    async def close(self) -> None:
        """Write what is pending (the bot is stopping)."""
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()

    async def recent(self, user_id: int, guild_id: int | None, limit: int = RECENT_KEPT) -> list[list[str]]:
        """This person's latest label sets here, newest first."""
        if (user_id, guild_id or 0) in self._pending:
            await self.flush()
        async with self.db.session() as session:
            rows = await session.scalars(
                select(RecentLabelSet.labels)
                .where(RecentLabelSet.user_id == user_id, RecentLabelSet.guild_id == (guild_id or 0))
                .order_by(RecentLabelSet.used_at.desc(), RecentLabelSet.id.desc())
                .limit(limit)
            )
            return [text.split("\n") for text in rows]

    async def forget_user(self, user_id: int) -> dict[str, int]:
        """Delete everything stored about a person: their presets and recent label sets."""
        if any(key[0] == user_id for key in self._pending):
            await self.flush()  # then everything about them is in the tables, and deleted below
        async with self.db.session() as session, session.begin():
            presets = await session.execute(
                delete(LabelPreset).where(LabelPreset.scope == "user", LabelPreset.owner_id == user_id)
            )
            recents = await session.execute(delete(RecentLabelSet).where(RecentLabelSet.user_id == user_id))
        return {"presets": rows_changed(presets), "recent label sets": rows_changed(recents)}

    async def forget_guild(self, guild_id: int) -> int:
        """A server's presets, defaults and autotagged channels, and that the bot was there (when the
        bot leaves it: the reconcile after downtime calls this, so every server setting goes here)."""
        async with self.db.session() as session, session.begin():
            await session.execute(delete(AutotagChannel).where(AutotagChannel.guild_id == guild_id))
            result = await session.execute(
                delete(LabelPreset).where(LabelPreset.scope == "guild", LabelPreset.owner_id == guild_id)
            )
            await session.execute(delete(GuildSettings).where(GuildSettings.guild_id == guild_id))
            await session.execute(delete(JoinedGuild).where(JoinedGuild.guild_id == guild_id))
        return rows_changed(result)

    async def joined(self, guild_ids: Sequence[int]) -> None:
        """The bot is a member of these servers (READY, or it just joined)."""
        if not guild_ids:
            return
        insert = postgresql_insert if self.db.backend == "postgresql" else sqlite_insert
        now = datetime.now(UTC)
        rows = [{"guild_id": guild_id, "seen_at": now} for guild_id in set(guild_ids)]
        async with self.db.session() as session, session.begin():
            await session.execute(insert(JoinedGuild).values(rows).on_conflict_do_nothing())

    async def joined_guilds(self) -> set[int]:
        """Every server the bot was seen a member of, and has not been seen leaving."""
        async with self.db.session() as session:
            return set(await session.scalars(select(JoinedGuild.guild_id)))

    async def guild_defaults(self, guild_id: int | None) -> tuple[str | None, str | None]:
        """(default template, default preset name) of a server; (None, None) outside one."""
        if guild_id is None:
            return None, None
        async with self.db.session() as session:
            row = await session.get(GuildSettings, guild_id)
        return (row.default_template, row.default_preset) if row is not None else (None, None)

    async def set_guild_defaults(self, guild_id: int, *, template: str | None, preset: str | None) -> None:
        """Set (or, with None, clear) a server's default template and preset."""
        async with self.db.session() as session, session.begin():
            row = await session.get(GuildSettings, guild_id)
            if row is None:
                session.add(GuildSettings(guild_id=guild_id, default_template=template, default_preset=preset))
            else:
                row.default_template, row.default_preset = template, preset

    async def count(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(LabelPreset)) or 0)
