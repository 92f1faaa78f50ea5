"""Autotagged channels round-trip on a real SQLite file and a real PostgreSQL server, and go with
their channel and their server (also through the purge the reconcile after downtime calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.storage import Database, PresetStore
from bot.storage.autotag import AutotagEntry, AutotagSettings

GUILD, OTHER_GUILD = 7_000_001, 7_000_002


@pytest_asyncio.fixture(params=["sqlite", "postgresql"], loop_scope="session")
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path}/clipbot.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(url)
    await database.start()
    yield database
    store = AutotagSettings(database)
    for guild in (GUILD, OTHER_GUILD):  # one PostgreSQL server for the session: leave it empty
        await store.remove_guild(guild)
    await database.close()


def _entry(channel_id: int, guild_id: int = GUILD, **changes: object) -> AutotagEntry:
    values: dict[str, object] = {
        "channel_id": channel_id,
        "guild_id": guild_id,
        "labels": ("🐱 cat", "<:dog:123456789012345678> dog", "fox"),
        "mode": "react",
        "min_probability": 0.5,
    }
    values.update(changes)
    return AutotagEntry(**values)  # type: ignore[arg-type]


async def test_settings_round_trip_replace_and_list_per_server(database: Database) -> None:
    store = AutotagSettings(database)
    assert await store.set(_entry(11)) is True
    assert await store.get(11) == _entry(11)  # emoji, server emoji and order kept exactly
    replaced = _entry(11, labels=("red", "blue"), mode="reply", min_probability=0.25, preset="colours")
    assert await store.set(replaced) is False
    assert await store.get(11) == replaced
    await store.set(_entry(12))
    await store.set(_entry(21, OTHER_GUILD))
    assert [e.channel_id for e in await store.guild(GUILD)] == [11, 12]
    assert {e.channel_id for e in await store.everywhere()} == {11, 12, 21}


async def test_rows_go_with_their_channel_and_their_server(database: Database) -> None:
    store = AutotagSettings(database)
    for channel in (11, 12):
        await store.set(_entry(channel))
    await store.set(_entry(21, OTHER_GUILD))
    assert await store.remove(11) is True
    assert await store.remove(11) is False
    assert await store.get(11) is None
    assert await store.remove_guild(GUILD) == 1
    assert [e.channel_id for e in await store.everywhere()] == [21]


async def test_the_servers_purge_after_downtime_takes_its_autotag_rows_too(database: Database) -> None:
    """The reconcile purges a server the bot left through `PresetStore.forget_guild`."""
    store = AutotagSettings(database)
    await store.set(_entry(11))
    await store.set(_entry(21, OTHER_GUILD))
    await PresetStore(database).forget_guild(GUILD)
    assert await store.guild(GUILD) == []
    assert [e.channel_id for e in await store.everywhere()] == [21]
