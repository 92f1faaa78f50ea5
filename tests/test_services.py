"""The composition root (bot.services): built once, closed by whoever built it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.discord.client import ClipBot
from bot.engine import ClipEngine
from bot.services import create_services
from tests.support.settings import TEST_CACHE_DIR, make_settings


async def test_a_bot_handed_an_engine_closes_its_own_stores_but_not_the_engine(engine: ClipEngine) -> None:
    bot = ClipBot(make_settings(), engine=engine)
    assert bot.services.engine is engine and bot.service.embedder is engine
    await bot.services.start()
    await bot.presets.save("user", 1, "kept", ["a", "b"], by=1)
    await bot.close()
    vectors = await engine.embed_texts(["a photo of a red circle"])
    assert vectors.shape[0] == 1, "the shared engine still serves after the bot closed"


async def test_a_one_shot_query_builds_no_storage(engine: ClipEngine) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="services-", dir=TEST_CACHE_DIR)) / "never-made"
    services = create_services(make_settings(data_dir=data_dir), engine=engine)
    ranking = await services.clip.similar("a red circle", ["a blue square", "a red circle"])
    await services.aclose()
    assert len(ranking.scores) == 2
    assert not data_dir.exists(), "no database or data folder for a query that needs none"


async def test_each_store_is_built_once(engine: ClipEngine) -> None:
    services = create_services(make_settings(), engine=engine)
    assert services.presets is services.presets and services.search is services.search
    assert services.search.store is services.vectors
    await services.aclose()
