"""The tests' settings: the tiny model, CPU, no .env, and a model cache of this run's own.

`tests/conftest.py` points Roboflow Inference at `TEST_CACHE_DIR` (it reads the variable once,
at import) and removes the folder when the run ends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.config import Settings
from tests.support.paths import TINY_MODEL_DIR

TEST_CACHE_DIR = Path(tempfile.mkdtemp(prefix="clipbot-test-cache-"))


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: the tiny model, CPU, no .env, no per-user rate limit or in-flight cap."""
    values: dict[str, object] = {
        "clip_model_dir": TINY_MODEL_DIR,
        "model_cache_dir": TEST_CACHE_DIR,
        "clip_execution_providers": ("CPUExecutionProvider",),
        "user_cooldown_s": 0,
        # Tests send many commands as one user at once; the flood tests set their own caps.
        "user_max_in_flight": 0,
        # A database of its own for each bot or engine a test builds: no state leaks between tests.
        "data_dir": Path(tempfile.mkdtemp(prefix="data-", dir=TEST_CACHE_DIR)),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
