"""`python -m bot` run as a user would, in a subprocess, with the tests' model cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO
from tests.support.settings import TEST_CACHE_DIR


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "CLIP_MODEL_DIR")}
    environment.update({"MODEL_CACHE_DIR": str(TEST_CACHE_DIR), "CLIP_EXECUTION_PROVIDERS": "CPUExecutionProvider"})
    # This checkout's code, whichever checkout the virtualenv was installed from.
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )
