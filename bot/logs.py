"""Logging to stderr, with secrets scrubbed from every line (tracebacks too).

A secret reaches a log in more shapes than it was given in: a database URL's password
alone (in a driver's error), percent-encoded or decoded, inside the URL rewritten for
the async driver (`postgresql+asyncpg://`), or a URL's `user:password`. `bot.errors.secret_forms`
lists them all, and every form is scrubbed.

Libraries that log what they send at DEBUG are capped at INFO whatever `LOG_LEVEL`
says: discord.py's HTTP and webhook loggers (interaction tokens are in their URLs),
and aiosqlite (SQL parameters: labels, ids).
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable

from bot.errors import redaction_forms, scrub

REDACTED = "[redacted]"
#: Loggers that never go below INFO: what they log at DEBUG carries tokens or user data.
CHATTY_AT_DEBUG = ("discord.http", "discord.webhook", "discord.gateway", "aiosqlite")


class RedactingFormatter(logging.Formatter):
    """Replaces each known secret, in each of its forms, in the fully formatted record."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self.secrets = redaction_forms(secrets)

    def redact(self, text: str) -> str:
        return scrub(text, self.secrets, REDACTED)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


#: The formatter `setup_logging` installed, for text printed outside the log (`redact_as_logged`).
_formatter = RedactingFormatter("%(message)s", ())


def redact_as_logged(text: str) -> str:
    """`text` scrubbed of the secrets `setup_logging` was given, for lines printed outside
    the log (the CLI's `error:` lines)."""
    return _formatter.redact(text)


def _not_voice_notice(record: logging.LogRecord) -> bool:
    """discord.py warns at start-up that voice libraries are missing; this bot has no voice."""
    return "voice will NOT be supported" not in record.getMessage()


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Send all logs to stderr (stdout is for results), secrets redacted."""
    global _formatter
    handler = logging.StreamHandler(sys.stderr)
    _formatter = RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", secrets)
    handler.setFormatter(_formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler.addFilter(_not_voice_notice)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Gateway chatter is noise for operators; the others log tokens or user data at DEBUG.
    for name in CHATTY_AT_DEBUG:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))


class PrintsToLog(io.TextIOBase):
    """A stream for `contextlib.redirect_stdout`: each printed line becomes a log record.

    Roboflow Inference `print()`s its progress; stdout is for results, and a one-shot
    CLI query should show it only with `-v`.
    """

    def __init__(self, logger: logging.Logger, level: int = logging.INFO) -> None:
        super().__init__()
        self.logger = logger
        self.level = level

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.logger.log(self.level, "%s", line.rstrip())
        return len(text)
