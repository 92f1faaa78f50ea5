"""`python -m benchmarks.runtimes` runs end to end on the tiny model and names every figure.

Timings are not judged here (BENCHMARKS.md holds them); the agreement figures are, loosely:
each candidate's embeddings must be the fp32 reference's to the engine's own bounds.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bot.engine import runtimes
from tests.support.paths import REPO, TINY_MODEL_DIR


def test_runtimes_bench_prints_each_part_with_every_candidate() -> None:
    command = [sys.executable, "-m", "benchmarks.runtimes", "--model-dir", str(TINY_MODEL_DIR), "--runs", "2"]
    command += ["--parts", "visual", "threads", "text"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    parts = {line["part"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert set(parts) == {"machine", "visual", "threads", "text"}
    assert parts["machine"]["onnxruntime"]
    offered = ["onnxruntime-fp32", "onnxruntime-int8"] + (
        ["openvino-bf16", "openvino-fp32"] if runtimes.openvino_available() else []
    )
    for name in offered:
        visual, text = parts["visual"][name], parts["text"][name]
        precision = name.rsplit("-", 1)[1]
        assert visual["batch1_ms"] > 0 and visual["batch4_ms"] > 0
        assert visual["min_cosine_to_fp32"] >= runtimes.MIN_COSINE[precision]
        assert 0 <= visual["max_score_change"] < 0.05
        assert text["batch_ms"] > 0 and text["min_cosine_to_fp32"] >= runtimes.MIN_COSINE[precision]
    assert parts["threads"]["onnxruntime-fp32"]["batch8_ms_per_image"] > 0
