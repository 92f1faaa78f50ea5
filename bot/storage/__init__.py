"""Storage: presets, recent label sets and per-server settings, in SQLite or PostgreSQL.

One code path for both: SQLAlchemy 2's asyncio API (over aiosqlite and asyncpg),
with Alembic migrations run at start-up. Knows nothing of Discord.
"""

from bot.storage.db import Database
from bot.storage.presets import Preset, PresetStore

__all__ = ["Database", "Preset", "PresetStore"]
