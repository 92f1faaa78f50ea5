"""The session question (issue 14): swap tuned sessions in after start-up, or own them from load?

    python -m benchmarks.sessions --model-dir models/vit-b-16-random [--repeats 3]

Each mode runs in a fresh process (start-up costs are per process), `--repeats` times:

- `swap` (what the bot does): inference's `Clip` loads with its own sessions and answers
  requests at once (`ready_s`); once quiet, tuned sessions (no CPU arena, no spinning,
  real-length text graph) replace them in the background (`settled_s`).
- `own`: what owning both sessions from load would cost: inference is imported and its cache
  used as in the bot, but only the tuned sessions are created (`ready_s`), no swap.

RSS is read from /proc at ready and once settled; peak is the process's `ru_maxrss`. The
real-length text graph is built (and cached) by a first, unmeasured `swap` run, so both modes
load it from disk. Prints one JSON object. Uses public APIs only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure_swap(model_dir: Path, cache: Path) -> dict[str, float]:
    from bot.config import Settings
    from bot.engine import ClipEngine

    settings = Settings(clip_model_dir=model_dir, model_cache_dir=cache, decode_workers=1)
    started = time.perf_counter()
    engine = ClipEngine(settings)
    await engine.start()
    ready_s, ready_rss = time.perf_counter() - started, rss_mb()
    await engine.settled()
    result = {
        "ready_s": ready_s,
        "settled_s": time.perf_counter() - started,
        "rss_ready_mb": ready_rss,
        "rss_settled_mb": rss_mb(),
        "peak_mb": peak_mb(),
    }
    await engine.aclose()
    return result


def measure_own(model_dir: Path, cache: Path) -> dict[str, float]:
    import numpy as np

    from bot.config import Settings
    from bot.engine import sessions
    from bot.engine.loading import configure_inference_env, import_clip_class, stage_local_model

    settings = Settings(clip_model_dir=model_dir, model_cache_dir=cache)
    started = time.perf_counter()
    configure_inference_env(settings)
    import_clip_class()  # the same imports as the bot (registry, cache, tokenizer)
    import onnxruntime
    from inference.core.cache.model_artifacts import get_cache_dir

    folder = Path(get_cache_dir(model_id=stage_local_model(model_dir)))
    providers = ["CPUExecutionProvider"]
    visual = onnxruntime.InferenceSession(
        str(folder / "visual.onnx"), sess_options=sessions.session_options(), providers=providers
    )
    (graph,) = sorted((cache / "clipbot" / "text-real-length").glob("*.onnx"))
    text = onnxruntime.InferenceSession(str(graph), sess_options=sessions.session_options(), providers=providers)
    side = visual.get_inputs()[0].shape[2]
    visual.run(None, {visual.get_inputs()[0].name: np.zeros((1, 3, side, side), np.float32)})
    text.run(None, {text.get_inputs()[0].name: np.array([[49406, 320, 49407]], np.int32)})
    ready_s = time.perf_counter() - started
    rss = rss_mb()
    return {"ready_s": ready_s, "settled_s": ready_s, "rss_ready_mb": rss, "rss_settled_mb": rss, "peak_mb": peak_mb()}


def child(mode: str, model_dir: Path, cache: Path) -> None:
    result = asyncio.run(measure_swap(model_dir, cache)) if mode == "swap" else measure_own(model_dir, cache)
    print(json.dumps(result))


def run_child(mode: str, model_dir: Path, cache: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.sessions", "--child", mode, "--model-dir", str(model_dir)]
    out = subprocess.run([*command, "--cache", str(cache)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sessions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("swap", "own"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.model_dir.resolve(), args.cache)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        run_child("swap", args.model_dir.resolve(), cache)  # builds and caches the text graph
        runs: dict[str, list[dict[str, float]]] = {"swap": [], "own": []}
        for _ in range(args.repeats):
            for mode in runs:  # interleaved, so drift in the machine's load hits both
                runs[mode].append(run_child(mode, args.model_dir.resolve(), cache))
    summary = {
        mode: {key: round(statistics.median(run[key] for run in results), 3) for key in results[0]}
        for mode, results in runs.items()
    }
    print(json.dumps({"model_dir": str(args.model_dir), "repeats": args.repeats, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
