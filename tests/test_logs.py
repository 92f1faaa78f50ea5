"""Secrets are scrubbed from every log line, tracebacks included."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.errors import StartupError
from bot.logs import REDACTED, RedactingFormatter, setup_logging
from bot.storage import Database
from bot.storage.db import async_url


def test_secrets_are_redacted_from_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s", ["tok.en-SECRET", "rf_key_123"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("login with %s failed (key %s)", "tok.en-SECRET", "rf_key_123")
        try:
            raise RuntimeError("401 for token tok.en-SECRET")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "tok.en-SECRET" not in text and "rf_key_123" not in text
    assert text.count(REDACTED) == 4  # two in the message, the raise line and the exception line
    assert "Traceback" in text and "RuntimeError: 401 for token [redacted]" in text


def formatted(secrets: list[str], *lines: str) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s", secrets))
    logger = logging.getLogger("test.redaction.forms")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for line in lines:
            logger.error("%s", line)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_derived_forms_of_url_secrets_are_redacted() -> None:
    """A password as a driver or the async URL shows it: alone, decoded, re-encoded; `user:password`
    of every URL setting (the inference servers' too)."""
    values: dict[str, Any] = {
        "database_url": "postgresql://clip:p%40ss%2Fw0rd@db:5432/clipbot",
        "inference_server_url": "http://gpu-1:9001,http://robot:inf3rence-pw@gpu-2:9001",
        "clip_backend": "remote",
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    text = formatted(
        settings.secrets(),
        "password authentication failed (password p@ss/w0rd)",
        "connecting with p%40ss%2Fw0rd",
        f"engine {async_url(settings.database)}",
        "auth robot:inf3rence-pw",
        "GET http://robot:inf3rence-pw@gpu-2:9001/clip/embed_text",
        "http://gpu-1:9001 is not secret",
    )
    for leak in ("p@ss/w0rd", "p%40ss%2Fw0rd", "p%40ss%2Fw0rd", "inf3rence-pw", "w0rd"):
        assert leak not in text, text
    assert "http://gpu-1:9001 is not secret" in text
    assert text.count(REDACTED) >= 5


@contextlib.contextmanager
def bot_logging(level: str, secrets: list[str]) -> Iterator[io.StringIO]:
    """The bot's own logging set-up (`setup_logging`), writing into a string; restored after."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        with contextlib.redirect_stderr(stream):
            setup_logging(level, secrets)
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(root_level)


def test_a_failing_query_does_not_log_its_labels(tmp_path: Path) -> None:
    """SQLAlchemy puts a failed statement's parameters in its error, which is logged with its
    traceback, and aiosqlite logs every call's parameters at DEBUG: even with LOG_LEVEL=DEBUG,
    the labels stay out of the log (they are people's words)."""

    async def fail() -> None:
        database = Database(f"sqlite:///{tmp_path}/clipbot.db")
        await database.start()
        try:
            async with database.session() as session, session.begin():
                await session.execute(
                    text("INSERT INTO label_presets (labels) VALUES (:labels)"), {"labels": "my-private-label-set"}
                )
        except Exception:
            logging.getLogger("bot.test").exception("saving failed")
        finally:
            await database.close()

    with bot_logging("DEBUG", []) as log:
        asyncio.run(fail())
    assert "saving failed" in log.getvalue() and "IntegrityError" in log.getvalue()
    assert "DEBUG" in log.getvalue()  # the level was on
    assert "my-private-label-set" not in log.getvalue()


def test_libraries_that_log_tokens_at_debug_stay_at_info() -> None:
    with bot_logging("DEBUG", ["tok"]):
        assert logging.getLogger().level == logging.DEBUG
        for name in ("discord.http", "discord.webhook", "aiosqlite"):
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name


def test_cli_error_lines_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start-up error naming the database URL (its password decoded, as a driver says it)."""
    from bot import cli

    monkeypatch.setenv("DATABASE_URL", "postgresql://clip:s3cr%40t-pw@127.0.0.1:1/clipbot")
    monkeypatch.chdir(tmp_path)

    def fail(*_: object) -> int:
        raise StartupError("Cannot connect as clip with password s3cr@t-pw")

    monkeypatch.setattr(cli, "_run_query", fail)
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        assert cli.main(["similar", "a", "--others", "b"]) == 1
    assert stream.getvalue().startswith("error: Cannot connect as clip with password [redacted]")
    assert "s3cr" not in stream.getvalue()
