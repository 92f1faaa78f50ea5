"""Shared fixtures: the tiny trained CLIP, loaded the production way.

Roboflow Inference reads MODEL_CACHE_DIR and OFFLINE_MODE once, at import, so
they are set here, before any test imports it: tests never touch the user's
cache and never try the network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL_DIR = REPO / "tests" / "assets" / "tiny-clip"
TEST_CACHE_DIR = Path(tempfile.mkdtemp(prefix="clipbot-test-cache-"))

os.environ["MODEL_CACHE_DIR"] = str(TEST_CACHE_DIR)
os.environ["OFFLINE_MODE"] = "True"
# The suite boots the bot dozens of times: on today's exact fp32 path, the same on every CPU.
# The tests of the runtime choice (tests/engine/test_runtimes.py) ask for it by name.
os.environ["CLIP_PRECISION"] = "fp32"
os.environ.pop("CLIP_RUNTIME", None)
os.environ.pop("DISCORD_TOKEN", None)
os.environ.pop("ROBOFLOW_API_KEY", None)

from bot.config import Settings  # noqa: E402
from bot.engine import ClipEngine  # noqa: E402
from bot.service import ClipService  # noqa: E402
from scripts.inference_server import InferenceServer, inference_servers  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The test model cache is per run: leave nothing behind in /tmp."""
    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: the tiny model, CPU, no .env, no cooldown."""
    values: dict[str, object] = {
        "clip_model_dir": TINY_MODEL_DIR,
        "model_cache_dir": TEST_CACHE_DIR,
        "clip_execution_providers": ("CPUExecutionProvider",),
        "user_cooldown_s": 0,
        # A database of its own for each bot or engine a test builds: no state leaks between tests.
        "data_dir": Path(tempfile.mkdtemp(prefix="data-", dir=TEST_CACHE_DIR)),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
