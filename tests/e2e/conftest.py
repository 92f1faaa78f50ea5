"""Fixtures the scenario tests share (their helpers live in tests/support)."""

from tests.support.search import guild  # noqa: F401 - the image search scenarios' guild
from tests.support.threads import thread_guild  # noqa: F401 - the thread and forum scenarios' guild
