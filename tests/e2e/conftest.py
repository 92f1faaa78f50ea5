"""Fixtures the scenario tests share (their helpers live in tests/support)."""

from tests.support.autotag import tagging_guild  # noqa: F401 - the autotag scenarios' guild
from tests.support.search import guild  # noqa: F401 - the image search scenarios' guild
