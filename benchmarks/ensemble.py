"""What `template:ensemble` costs on a cold label set, against one template.

    .venv/bin/python -m benchmarks.ensemble --model-dir DIR [--labels 8] [--rounds 5]

Each round uses labels never seen before (so nothing comes from the text cache) and
times the text side of `/classify`: fitting the prompts and embedding them (one
template: 1 prompt per label; ensemble: 7). The image side is the same for both and
left out. Prints JSON; figures go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from benchmarks.engines import started_engine
from bot.labels import ENSEMBLE
from bot.service import ClipService

WORDS = ["cat", "dog", "car", "tree", "house", "boat", "bird", "flower", "lamp", "chair", "cup", "horse"]


async def run(model_dir: Path, labels: int, rounds: int, cache_dir: Path | None = None) -> dict[str, object]:
    settings, engine, _ = await started_engine(model_dir, cache_dir)
    service = ClipService(engine, settings)
    timings: dict[str, list[float]] = {"single": [], "ensemble": []}
    for round_ in range(rounds):
        for mode, template in (("single", "a photo of a {}"), ("ensemble", ENSEMBLE)):
            names = [f"{WORDS[i % len(WORDS)]} {mode} {round_} {i}" for i in range(labels)]
            started = time.perf_counter()
            await service.label_vectors(names, template)
            timings[mode].append(time.perf_counter() - started)
    await engine.aclose()
    single, ensemble = statistics.median(timings["single"]), statistics.median(timings["ensemble"])
    return {
        "model": str(model_dir),
        "labels": labels,
        "text_mode": engine.backend.text_mode,
        "single_cold_s": round(single, 4),
        "ensemble_cold_s": round(ensemble, 4),
        "ensemble_vs_single": round(ensemble / single, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.model_dir, args.labels, args.rounds))))


if __name__ == "__main__":
    main()
