"""The composition root: every service built once, from the settings, for either front end.

The bot (`bot.discord.client.ClipBot`) and the CLI (`bot.cli`) both start here, so
the engine, the service and the stores are wired in one place. Storage is built on
first use: a one-shot CLI query touches only the engine and `ClipService`, and must
not create a database or a data folder.

Whoever calls `create_services` owns the result and closes it (`aclose`); it closes
only what it built, so an engine handed in (shared by tests) stays open.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.service import ClipService

if TYPE_CHECKING:
    from bot.engine import ClipEngine
    from bot.search import SearchService
    from bot.storage import Database, PresetStore
    from bot.storage.autotag import AutotagSettings
    from bot.storage.index_settings import IndexSettings
    from bot.storage.index_threads import IndexThreads
    from bot.storage.vectors import VectorStore

log = logging.getLogger(__name__)


class Services:
    """What the front ends use: the engine, `ClipService`, and (built on first use) the stores."""

    def __init__(self, settings: Settings, engine: ClipEngine, *, owns_engine: bool) -> None:
        self.settings = settings
        self.engine = engine
        self.clip = ClipService(engine, settings)
        self._owns_engine = owns_engine

    # Storage: `functools.cached_property` builds each once, on first use.
    @functools.cached_property
    def database(self) -> Database:
        from bot.storage import Database

        return Database(self.settings.database)

    @functools.cached_property
    def presets(self) -> PresetStore:
        from bot.storage import PresetStore

        return PresetStore(self.database)

    @functools.cached_property
    def index_channels(self) -> IndexSettings:
        """Which channels are indexed for image search, and their backfills' checkpoints."""
        from bot.storage.index_settings import IndexSettings

        return IndexSettings(self.database)

    @functools.cached_property
    def index_threads(self) -> IndexThreads:
        """Threads and forum posts of indexed channels, and their backfills' checkpoints."""
        from bot.storage.index_threads import IndexThreads

        return IndexThreads(self.database)

    @functools.cached_property
    def autotag_channels(self) -> AutotagSettings:
        """Which channels tag their own images (`/autotag`), with their labels."""
        from bot.storage.autotag import AutotagSettings

        return AutotagSettings(self.database)

    @functools.cached_property
    def vectors(self) -> VectorStore:
        from bot.storage.vectors import VectorStore

        token = self.settings.vector_db_token
        return VectorStore(
            self.settings.vector_db,
            token=token.get_secret_value() if token else None,
            erase_after_s=self.settings.vector_erase_after_s,
        )

    @functools.cached_property
    def search(self) -> SearchService:
        from bot.search import SearchService
        from bot.storage.erasures import Erasures

        return SearchService(
            self.clip, self.vectors, self.settings, Erasures(self.database), model_ready=self.engine.wait_ready
        )

    def _built(self, name: str) -> bool:
        return name in self.__dict__  # where `cached_property` keeps what it built

    async def start(self) -> None:
        """Create or migrate the database schema (the bot, before it serves)."""
        await self.database.start()

    async def aclose(self) -> None:
        """Close what was built here, in order: unsaved label sets first, the engine last
        (and only if it was built here)."""
        if self._built("presets"):
            try:
                await self.presets.close()  # recent label sets still in memory
            except Exception:
                log.warning("Could not store the last recent label sets", exc_info=True)
        if self._built("vectors"):
            await self.vectors.close()
        if self._built("database"):
            await self.database.close()
        if self._owns_engine:
            await self.engine.aclose()


def create_services(
    settings: Settings, *, engine: ClipEngine | None = None, tune_sessions: bool = True
) -> Services:
    """Everything both front ends share, built once. `engine`: one built elsewhere (not closed
    by `Services.aclose`); `tune_sessions=False` for one-shot queries (see `ClipEngine`)."""
    if engine is not None:
        return Services(settings, engine, owns_engine=False)
    from bot.engine import ClipEngine  # imported here so the CLI's `--help` stays instant

    return Services(settings, ClipEngine(settings, tune_sessions=tune_sessions), owns_engine=True)
