"""Logging to stderr, with secrets scrubbed from every line (tracebacks too)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable

from bot.errors import redact

REDACTED = "[redacted]"


class RedactingFormatter(logging.Formatter):
    """Replaces each known secret in the fully formatted record."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets, REDACTED)


def _not_voice_notice(record: logging.LogRecord) -> bool:
    """discord.py warns at start-up that voice libraries are missing; this bot has no voice."""
    return "voice will NOT be supported" not in record.getMessage()


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Send all logs to stderr (stdout is for results), secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler.addFilter(_not_voice_notice)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # discord.py's gateway chatter is DEBUG/INFO noise for operators.
    logging.getLogger("discord.gateway").setLevel(max(root.level, logging.INFO))


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
