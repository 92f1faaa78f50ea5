"""`python -m benchmarks.remote` runs end to end and prints every figure it promises (tiny model,
against the session's inference servers). Timings are judged in BENCHMARKS.md, not here."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.support.inference_server import InferenceServer, revive
from tests.support.paths import REPO

PROMISED = (
    "local_latency_s",
    "remote_latency_s",
    "overhead_per_request_ms",
    "local_rps_c2",
    "remote_rps_c2",
    "remote_vs_local_c2",
    "overhead_per_request_c2_ms",
)


async def test_remote_benchmark_prints_one_json_object(inference_pool: list[InferenceServer]) -> None:
    await revive(inference_pool[:1])
    environment = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "CLIP_MODEL_DIR", "CLIP_BACKEND")}
    command = [sys.executable, "-m", "benchmarks.remote", "--repeats", "1", "--concurrency", "2"]
    command += ["--latency-requests", "2", "--requests", "8", "--server-url", inference_pool[0].url]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=REPO, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, stderr.decode()[-2000:]
    result = json.loads(stdout)
    for key in PROMISED:
        assert isinstance(result[key], float), key
    assert result["servers"] == 1 and result["remote_rps_c2"] > 0
