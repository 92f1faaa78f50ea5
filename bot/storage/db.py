"""The database connection: SQLite file by default, PostgreSQL with `DATABASE_URL`.

`Database.start` creates the SQLite folder if needed and brings the schema up to
date with Alembic, inside one connection (Alembic's "connection sharing" recipe
for asyncio), so a first start needs no set-up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.errors import StartupError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def async_url(url: str) -> str:
    """`postgresql://` and `sqlite:///` as users write them, with the async drivers."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
    if parsed.drivername in driver:
        parsed = parsed.set(drivername=driver[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """Write-ahead log: readers never wait for a writer, and a commit needs no fsync of the
    whole file (`synchronous=NORMAL` stays durable across a crash of the bot, which is what
    matters for presets); wait for a lock instead of failing at once."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class Database:
    """One async engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        parsed = make_url(self.url)
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(self.url, pool_pre_ping=self.backend != "sqlite")
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs and messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def start(self) -> None:
        """Connect and migrate to the latest schema; a one-line `StartupError` if that fails."""
        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(_upgrade)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise StartupError(f"Cannot open the database {self.safe_url}: {type(exc).__name__}: {first}") from exc
        log.info("Database %s ready (%s)", self.safe_url, self.backend)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def close(self) -> None:
        await self.engine.dispose()


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (its result is a `CursorResult`)."""
    return cast("CursorResult[Any]", result).rowcount or 0
