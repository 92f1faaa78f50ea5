"""Image search, one extension: `/index` and the listeners that keep the index true
(`indexing`), channel backfills (`backfill`), threads and forum posts (`threads`), and
`/search` with the "Find similar images" message command (`queries`), and the reconcile
after downtime (`reconcile`).

The services (`bot.search.SearchService` on a `VectorStore`, and the indexed channels'
settings) are built at the composition root (`bot.services`); these cogs only adapt
Discord's events and commands to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.discord.exts.search.indexing import Indexing
from bot.discord.exts.search.queries import Search
from bot.discord.exts.search.reconcile import Reconcile

if TYPE_CHECKING:
    from bot.discord.client import ClipBot


async def setup(bot: ClipBot) -> None:
    indexing = Indexing(bot)
    await bot.add_cog(indexing)
    await bot.add_cog(Search(bot, indexing.places))
    await bot.add_cog(Reconcile(bot, indexing))
