"""No secret reaches a process that parses untrusted images: every child of the bot's process
(the fork server, the decode workers, multiprocessing's resource tracker) is read from /proc
while an image decodes, its environment and its command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.engine.worker_env import child_environment

REPO = Path(__file__).resolve().parents[2]
SECRETS = {
    "DISCORD_TOKEN": "tok.SECRET-discord-1",
    "ROBOFLOW_API_KEY": "rf-SECRET-key-2",
    "DATABASE_URL": "postgresql://clip:pw-SECRET-3@db/clipbot",
    "VECTOR_DB_URL": "http://root:vdb-SECRET-4@milvus:19530",
    "VECTOR_DB_TOKEN": "root:vdb-SECRET-5",
    "INFERENCE_SERVER_URL": "http://user:inf-SECRET-6@gpu-1:9001",
    "SOME_FUTURE_API_TOKEN": "future-SECRET-7",
}

#: The bot's side: start the decode pool as the engine does, decode a picture, and while it decodes
#: read every descendant process's environment and command line.
BOT = textwrap.dedent(
    """
    import io, json, os, sys
    import psutil
    from PIL import Image
    from bot.engine.decoding import ImageWorkers
    from bot.engine.preparation import PrepareSpec

    workers = ImageWorkers(2, timeout_s=30, memory_mb=1024)
    workers.start()
    spec = PrepareSpec(crop=224, max_pixels=50_000_000, thumbnail=256)
    workers.warm_up(spec)
    buffer = io.BytesIO()
    Image.effect_noise((3000, 3000), 60).convert("RGB").save(buffer, format="PNG")
    decoding = workers.submit(buffer.getvalue(), spec)
    seen = {}
    for child in psutil.Process().children(recursive=True):
        pid = child.pid
        seen[pid] = {
            "environ": open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"),
            "cmdline": open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace"),
            "decoding": not decoding.done(),
        }
    decoding.result(timeout=60)
    assert os.environ["DISCORD_TOKEN"]  # the bot's own process keeps its settings
    workers.close()
    print(json.dumps(seen))
    """
)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_no_child_process_holds_a_secret_while_an_image_decodes() -> None:
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", BOT], env=env, cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # The fork server, the resource tracker and two workers (at least), one of them busy decoding.
    assert len(seen) >= 4 and any(process["decoding"] for process in seen.values())
    for pid, process in seen.items():
        for name, secret in SECRETS.items():
            for part in (secret, secret.split("SECRET")[1]):
                assert part not in process["environ"], f"{name} in the environment of child {pid}"
                assert part not in process["cmdline"], f"{name} in the command line of child {pid}"
        assert "PATH=" in process["environ"]  # narrowed, not emptied


def test_the_child_environment_is_an_allow_list() -> None:
    kept = child_environment({**SECRETS, "PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "HOME": "/home/bot"})
    assert kept == {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "HOME": "/home/bot"}
