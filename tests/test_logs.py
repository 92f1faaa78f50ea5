"""Secrets are scrubbed from every log line, tracebacks included."""

from __future__ import annotations

import io
import logging

from bot.logs import REDACTED, RedactingFormatter


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
