"""`python -m benchmarks.bench` runs end to end and prints the JSON the benchmark promises.

Timings are not judged here (they belong in BENCHMARKS.md); this keeps the command working
and its output machine-readable, on the tiny model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.paths import REPO, TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR

PROMISED = (
    "seed_compare_s",
    "raw_visual_s",
    "engine_visual_s",
    "prepare_image_s",
    "classify_cold_s",
    "classify_warm_s",
    "similar_warm_s",
    "throughput_rps",
    "loop_lag_p99_ms",
    "ready_s",
    "rss_mb",
    "seed_load_s",
    "seed_rss_mb",
    "warm_vs_raw",
    "warm_vs_raw_paired",
    "seed_vs_warm",
)


def test_bench_prints_one_json_object_with_every_figure() -> None:
    environment = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "CLIP_MODEL_DIR")}
    environment.update({"MODEL_CACHE_DIR": str(TEST_CACHE_DIR), "CLIP_EXECUTION_PROVIDERS": "CPUExecutionProvider"})
    command = [sys.executable, "-m", "benchmarks.bench", "--model-dir", str(TINY_MODEL_DIR)]
    command += ["--labels", "4", "--concurrency", "2", "--repeats", "2"]
    result = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)  # the whole of stdout: nothing else may be printed there
    for key in PROMISED:
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["warm_vs_raw"] == figures["classify_warm_s"] / figures["raw_visual_s"]
    assert figures["seed_vs_warm"] == figures["seed_compare_s"] / figures["classify_warm_s"]
    assert figures["text_mode"] == "real length" and figures["labels"] == 4 and figures["concurrency"] == 2
    assert figures["runtime"] == "onnxruntime-fp32", "the suite's CLIP_PRECISION=fp32: today's path"
