"""Shared fixtures: the tiny trained CLIP, loaded the production way; the Discord stand-in;
and the `e2e` and `slow` markers, given by folder and by fixture.

Roboflow Inference reads MODEL_CACHE_DIR and OFFLINE_MODE once, at import, so
they are set here, before any test imports it: tests never touch the user's
cache and never try the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.settings import TEST_CACHE_DIR, make_settings

os.environ["MODEL_CACHE_DIR"] = str(TEST_CACHE_DIR)
os.environ["OFFLINE_MODE"] = "True"
# The suite boots the bot dozens of times: on today's exact fp32 path, the same on every CPU.
# The tests of the runtime choice (tests/engine/test_runtimes.py) ask for it by name.
os.environ["CLIP_PRECISION"] = "fp32"
os.environ.pop("CLIP_RUNTIME", None)
os.environ.pop("DISCORD_TOKEN", None)
os.environ.pop("ROBOFLOW_API_KEY", None)

from bot.config import Settings
from bot.engine import ClipEngine
from bot.service import ClipService
from tests.fakediscord.fixtures import fake  # noqa: F401  (the one Discord stand-in fixture)
from tests.support.inference_server import InferenceServer, inference_servers

TESTS = Path(__file__).resolve().parent
#: Folders whose every test carries a marker (pyproject.toml describes them).
FOLDER_MARKERS = {
    TESTS / "e2e": "e2e",  # the production bot through the Discord stand-in
    TESTS / "fakediscord": "e2e",  # the stand-in's self-tests, each with a real discord.py client
    TESTS / "benchmarks": "slow",  # the benchmark commands, run whole
}
#: Fixtures that make a test slow wherever it is.
SLOW_FIXTURES = frozenset({"inference_pool"})  # real Roboflow Inference Servers, slow to start


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by folder and by fixture, so `-m "not e2e and not slow"` is the fast loop."""
    for item in items:
        for folder, marker in FOLDER_MARKERS.items():
            if item.path.is_relative_to(folder):
                item.add_marker(marker)
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker("slow")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The test model cache is per run: leave nothing behind in /tmp."""
    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[ClipEngine]:
    """One loaded engine for the session (the model loads in well under a second)."""
    clip_engine = ClipEngine(settings)
    await clip_engine.start()
    await clip_engine.settled()  # the steady state: real-length text graph in place
    yield clip_engine
    await clip_engine.aclose()


@pytest.fixture(scope="session")
def service(engine: ClipEngine, settings: Settings) -> ClipService:
    return ClipService(engine, settings)


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def inference_pool() -> AsyncIterator[list[InferenceServer]]:
    """Two real Roboflow Inference Servers with the tiny CLIP, shared by the remote-backend tests
    (each takes ~20 s to start); a test that kills one `revive`s it afterwards."""
    async with inference_servers(2) as servers:
        yield servers
