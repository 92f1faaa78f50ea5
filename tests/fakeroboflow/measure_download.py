"""Throughput and memory of a first-run download: the bot's downloader vs inference's own.

    .venv/bin/python -m tests.fakeroboflow.measure_download [--mb 256 | --tiny]

Serves a synthetic model (`visual.onnx` of `--mb` MB, `textual.onnx` of a quarter
of that) from the stand-in on 127.0.0.1, and in a fresh subprocess each (online,
empty cache) downloads it with `bot.engine.model_download.ensure_model_downloaded`, then
with inference's `download_model_from_roboflow_api`. Each child reports wall time
and its peak RSS above what it had right after importing inference
(`ru_maxrss`), plus the peak of Python allocations (`tracemalloc`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fakeroboflow import FakeRoboflow

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, resource, sys, time, tracemalloc
from bot.config import Settings
from bot.engine.loading import configure_inference_env, import_clip_class
settings = Settings(_env_file=None, clip_model_id="clip/big", model_cache_dir=sys.argv[2])
configure_inference_env(settings)
Clip = import_clip_class()
import inference.core.roboflow_api  # everything both paths need, imported before the baseline
import requests
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
started = time.perf_counter()
if sys.argv[1] == "bot":
    from bot.engine.model_download import ensure_model_downloaded
    ensure_model_downloaded(settings, "clip/big")
else:
    from inference.core.devices.utils import GLOBAL_DEVICE_ID
    model = Clip.__new__(Clip)  # only the attributes the download reads; no ONNX session
    model.endpoint, model.api_key, model.device_id = "clip/big", None, GLOBAL_DEVICE_ID
    model.countinference = model.service_secret = None
    from inference.core.cache.model_artifacts import get_cache_dir
    model.cache_dir = get_cache_dir("clip/big")
    model.download_model_from_roboflow_api()
elapsed = time.perf_counter() - started
python_peak = tracemalloc.get_traced_memory()[1]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"s": elapsed, "rss_over_baseline_mb": (peak - base) / 1024, "python_peak_mb": python_peak / 1e6}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--tiny", action="store_true", help="serve the tiny test model (7 MB) instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "model"
        folder.mkdir()
        if args.tiny:
            for name in ("visual.onnx", "textual.onnx"):
                (folder / name).write_bytes((REPO / "tests" / "assets" / "tiny-clip" / name).read_bytes())
        else:
            (folder / "visual.onnx").write_bytes(os.urandom(args.mb * 1_000_000))
            (folder / "textual.onnx").write_bytes(os.urandom(args.mb * 250_000))
        total_mb = sum(path.stat().st_size for path in folder.iterdir()) / 1e6
        with FakeRoboflow({"clip/big": folder}) as server:
            for which in ("bot", "inference"):
                cache = Path(work) / f"cache-{which}"
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if k not in ("OFFLINE_MODE", "CLIP_MODEL_DIR") and not k.startswith("_ROBOFLOW_INFERENCE_")
                }
                env.update(PYTHONPATH=str(REPO), API_BASE_URL=server.base_url)
                result = subprocess.run(
                    [sys.executable, "-c", CHILD, which, str(cache)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode != 0:
                    raise SystemExit(result.stderr)
                numbers = json.loads(result.stdout.strip().splitlines()[-1])
                print(
                    f"{which:>9}: {total_mb:.1f} MB in {numbers['s']:.2f} s ({total_mb / numbers['s']:.0f} MB/s); "
                    f"peak RSS +{numbers['rss_over_baseline_mb']:.0f} MB over the post-import baseline, "
                    f"Python allocations peak {numbers['python_peak_mb']:.1f} MB"
                )


if __name__ == "__main__":
    main()
