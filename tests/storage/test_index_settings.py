"""Indexed channels' settings on a real SQLite file and a real PostgreSQL server: repost alerts (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.storage import Database
from bot.storage.index_settings import IndexSettings

GUILD, CHANNEL, OTHER = 9_100, 9_101, 9_102


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_repost_alerts_are_off_unless_asked_and_survive_a_restart(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path}/clipbot.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(url)
    await database.start()
    channels = IndexSettings(database)
    try:
        await channels.add(GUILD, CHANNEL, 1, backfill=False, model_id="m")
        await channels.add(GUILD, OTHER, 1, backfill=False, model_id="m", repost_alerts=True)
        assert [e.repost_alerts for e in sorted(await channels.guild(GUILD), key=lambda e: e.channel_id)] == [
            False,
            True,
        ]
        assert await channels.set_repost_alerts(CHANNEL, True)
        assert not await channels.set_repost_alerts(12345, True)  # not indexed: nothing changed
        await database.close()
        database = Database(url)  # a restart reads it back
        await database.start()
        channels = IndexSettings(database)
        entry = await channels.get(CHANNEL)
        assert entry is not None and entry.repost_alerts
        assert await channels.set_repost_alerts(OTHER, False)
        entry = await channels.get(OTHER)
        assert entry is not None and not entry.repost_alerts
    finally:
        await channels.remove_guild(GUILD)
        await database.close()
