"""Indexed threads and their backfill checkpoints, on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.storage import Database
from bot.storage.index_threads import IndexThreads

GUILD, OTHER_GUILD, PARENT, OTHER_PARENT = 100, 200, 10, 20


@pytest_asyncio.fixture(params=["sqlite", "postgresql"], loop_scope="session")
async def threads(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexThreads]:
    url = f"sqlite:///{tmp_path}/clipbot.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(url)
    await database.start()
    store = IndexThreads(database)
    yield store
    for guild in (GUILD, OTHER_GUILD):  # one PostgreSQL server for the session: leave it empty
        await store.remove_guild(guild)
    await database.close()


async def test_a_thread_found_again_keeps_its_checkpoint_and_a_live_one_gets_its_history_later(
    threads: IndexThreads,
) -> None:
    entry = await threads.add(1, PARENT, GUILD, private=True, backfill=True)
    assert (entry.backfill, entry.private, entry.cursor) == ("running", True, None)
    await threads.checkpoint(1, cursor=555, scanned=100, indexed=7, done=False)
    again = await threads.add(1, PARENT, GUILD, private=True, backfill=True)  # a backfill after a restart
    assert (again.cursor, again.scanned, again.indexed, again.backfill) == (555, 100, 7, "running")
    live = await threads.add(2, PARENT, GUILD, private=False, backfill=False)  # met through a new message
    assert live.backfill == "none"
    assert (await threads.add(2, PARENT, GUILD, private=False, backfill=True)).backfill == "running"
    await threads.checkpoint(2, cursor=None, scanned=3, indexed=1, done=True)
    assert (await threads.get(2)).backfill == "done"  # type: ignore[union-attr]


async def test_re_indexing_restarts_and_removing_a_channel_or_server_forgets_its_threads(threads: IndexThreads) -> None:
    await threads.add(1, PARENT, GUILD, private=False, backfill=True)
    await threads.add(2, PARENT, GUILD, private=False, backfill=True)
    await threads.add(3, OTHER_PARENT, GUILD, private=False, backfill=True)
    await threads.add(4, 30, OTHER_GUILD, private=False, backfill=True)
    for thread in (1, 2, 3):
        await threads.checkpoint(thread, cursor=9, scanned=9, indexed=9, done=True)
    assert await threads.restart_parents([PARENT]) == 2
    assert [(e.thread_id, e.backfill, e.cursor) for e in await threads.of_parent(PARENT)] == [
        (1, "running", None),
        (2, "running", None),
    ]
    assert (await threads.get(3)).backfill == "done"  # type: ignore[union-attr]
    assert sorted(await threads.remove_parent(PARENT)) == [1, 2]
    assert [e.thread_id for e in await threads.guild(GUILD)] == [3]
    assert await threads.remove(3) and not await threads.remove(3)
    assert await threads.remove_guild(OTHER_GUILD) == 1
    assert await threads.everywhere() == []
