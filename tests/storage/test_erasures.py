"""Forgetting lasts: a forgotten author's images and images an edit removed are never stored
again, whatever path would store them, across a restart; on SQLite and on PostgreSQL, with the
real embedded vector store behind the search service."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import pytest_asyncio

from bot.config import Settings
from bot.engine.backend import ModelInfo
from bot.search import SearchService
from bot.service import ClipService
from bot.storage import Database, PresetStore
from bot.storage.erasures import Erasures
from bot.storage.index_settings import IndexSettings
from bot.storage.vectors import ImageRef, VectorStore, collection_name

DIM = 8
GUILD, CHANNEL = 10, 100
#: Fresh ids per test: the PostgreSQL server is shared by the session's tests.
_ids = itertools.count(100_000_000_000_000_000 + int(np.random.default_rng().integers(1 << 40)) * 1000)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"], loop_scope="session")
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/clipbot.db"
    return cast(str, request.getfixturevalue("postgres_url"))


async def _no_model() -> ModelInfo:
    raise AssertionError("these tests open the store themselves")


class Bot:
    """The storage a bot process opens, and closes at a restart."""

    def __init__(self, database_url: str, vectors: Path) -> None:
        self.database_url, self.vectors = database_url, vectors
        self.database: Database | None = None
        self.store: VectorStore | None = None

    async def start(self) -> SearchService:
        self.database = Database(self.database_url)
        await self.database.start()
        self.store = VectorStore(str(self.vectors))
        await self.store.open("model-a", DIM)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        # No CLIP here: these tests store given vectors, as the indexer does after embedding.
        return SearchService(
            cast(ClipService, None), self.store, settings, Erasures(self.database), model_ready=_no_model
        )

    async def stop(self) -> None:
        assert self.store is not None and self.database is not None
        await self.store.close()
        await self.database.close()


@pytest_asyncio.fixture(loop_scope="session")
async def bot(database_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    yield Bot(database_url, tmp_path / "vectors.db")


def image(author: int, message: int | None = None, attachment: int | None = None) -> ImageRef:
    return ImageRef(GUILD, CHANNEL, message or next(_ids), author, attachment or next(_ids), 1_700_000_000)


def vectors(count: int) -> list[np.ndarray]:
    return list(np.random.default_rng(count).standard_normal((count, DIM)).astype(np.float32))


async def test_a_forgotten_author_stays_forgotten_after_a_restart(bot: Bot) -> None:
    forgotten, other = next(_ids), next(_ids)
    search = await bot.start()
    try:
        assert await search.store_images([image(forgotten), image(other)], vectors(2)) == 2
        await search.forget_author(forgotten)
        assert await search.store.count(author_id=forgotten) == 0
    finally:
        await bot.stop()

    # A new process: nothing in memory. A backfill or `/index rebuild` reads the history again.
    search = await bot.start()
    try:
        again = [image(forgotten), image(forgotten), image(other)]
        assert await search.store_images(again, vectors(3)) == 1
        assert await search.store.count(author_id=forgotten) == 0
        assert await search.store.count(author_id=other) == 2
    finally:
        await bot.stop()


async def test_an_image_an_edit_removed_is_never_stored_again(bot: Bot) -> None:
    author = next(_ids)
    stored_message, queued_message = next(_ids), next(_ids)
    kept, removed = image(author, stored_message), image(author, stored_message)
    queued_kept, queued_removed = image(author, queued_message), image(author, queued_message)
    search = await bot.start()
    try:
        assert await search.store_images([kept, removed], vectors(2)) == 2
        # The edit leaves one image of each message; the second message's were still being embedded.
        assert await search.images_edited(stored_message, GUILD, {kept.key}) == {kept.key, removed.key}
        assert await search.images_edited(queued_message, GUILD, {queued_kept.key}) == set()
        assert await search.store.keys(stored_message, GUILD) == {kept.key}
        # The queued embeddings finish after the edit: only the image still in the message is stored.
        assert await search.store_images([queued_kept, queued_removed], vectors(2)) == 1
        assert await search.store.keys(queued_message, GUILD) == {queued_kept.key}
    finally:
        await bot.stop()

    search = await bot.start()
    try:
        # A backfill page read before the edit, stored after a restart: the removed images stay out.
        assert await search.store_images([kept, removed, queued_kept, queued_removed], vectors(4)) == 2
        assert await search.store.keys(stored_message, GUILD) == {kept.key}
        assert await search.store.keys(queued_message, GUILD) == {queued_kept.key}
    finally:
        await bot.stop()


async def test_an_old_models_vectors_are_dropped_once_the_rebuild_is_done(bot: Bot) -> None:
    """After a model change, `/index rebuild` backfills every channel for the new model; when the
    last one is done, the old model's collection (its vectors and ids) is dropped."""
    channel = next(_ids)
    old = VectorStore(str(bot.vectors))
    await old.open("model-old", DIM)
    await old.add([image(next(_ids))], np.ones((1, DIM)))
    await old.close()
    search = await bot.start()
    assert bot.database is not None
    channels = IndexSettings(bot.database)
    try:
        await channels.add(GUILD, channel, 1, backfill=False, model_id="model-old")
        assert await search.retire_old_models(channels) == []  # a channel still on the old model
        await channels.restart_guild(GUILD, "model-a")
        assert await search.retire_old_models(channels) == []  # its backfill is still running
        await channels.checkpoint(channel, cursor=None, started_from=None, scanned=1, indexed=1, done=True)
        assert await search.retire_old_models(channels) == [collection_name("model-old")]
        assert search.store._collections() == [collection_name("model-a")]
    finally:
        await channels.remove(channel)
        await bot.stop()


async def test_the_migrations_make_exactly_the_models_tables(database_url: str) -> None:
    """Alembic's migrations (0004: forgotten authors, erased images) and the models agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bot.storage.models import Base

    database = Database(database_url)
    await database.start()
    try:
        async with database.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await database.close()
    assert differences == []


async def test_a_pending_erasure_lasts_until_done_and_asking_again_makes_it_pending_again(database_url: str) -> None:
    """`/forget-me` while the image index is unreachable: recorded pending in the database."""
    database = Database(database_url)
    await database.start()
    try:
        erasures = Erasures(database)
        person, other = next(_ids), next(_ids)
        await erasures.forget_author(person)
        await erasures.forget_author(other)
        assert {person, other} <= set(await erasures.pending())
        await erasures.index_erased(person)
        assert person not in await erasures.pending() and other in await erasures.pending()
        await erasures.forget_author(person)  # again (an upsert on both databases)
        assert person in await erasures.pending()

        presets = PresetStore(database)
        server = next(_ids)
        await presets.joined([server, server])
        assert server in await presets.joined_guilds()
        await presets.forget_guild(server)  # the bot left: it no longer counts as a member
        assert server not in await presets.joined_guilds()
    finally:
        await database.close()
