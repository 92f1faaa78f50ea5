"""/autotag's cost to everyone else: interactive /classify latency, idle and while images are
autotagged in the background.

    .venv/bin/python -m benchmarks.autotag --model-dir DIR [--images 1000] [--probes 60] [--concurrency 2]
        [--gap-ms 50] [--busy-share 0.25] [--rounds 3]

Idle: `--probes` /classify requests one after another (the service call /classify makes: a
thumbnail, the requester's decode allowance, 4 labels), `--gap-ms` apart, as people send them.
Busy: the same requests, again and again, while `--images` shape pictures are classified as
/autotag does it (`ClipService.classify(background=True)`, 5 labels with emoji, no thumbnail,
`--concurrency` at a time like the extension's `CONCURRENT_TAGS`), all queued at once, paced by
`AUTOTAG_BUSY_SHARE` (`--busy-share`; 1 turns pacing off); only requests that ended before the
last image was tagged count. Idle and busy phases alternate `--rounds` times (each busy phase
tags `--images`), so the machine's other load weighs on both alike. Prints one JSON object: each
phase's p50 / p90 / mean in ms, their ratio, and the background's images/s (Discord's fetch and
the reaction are left out: they are network, not CPU). Figures go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.engines import started_engine
from bot.autotag import parse_tag_labels
from bot.service import ClipService

INTERACTIVE_LABELS = ["red circle", "green square", "blue triangle", "yellow circle"]
AUTOTAG_LABELS = "🔴 red circle, 🟩 green square, 🔷 blue triangle, 🟡 yellow circle, 🟥 red square"


def _pngs(count: int, seed: int) -> list[bytes]:
    from tests.support.shapes import CLASSES, render

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        render(CLASSES[i % len(CLASSES)], rng).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


async def run(
    model_dir: Path,
    images: int = 1000,
    probes: int = 60,
    concurrency: int = 2,
    gap_ms: float = 50.0,
    busy_share: float = 0.25,
    rounds: int = 3,
    cache_dir: Path | None = None,
) -> dict[str, object]:
    settings, engine, _ = await started_engine(model_dir, cache_dir, autotag_busy_share=busy_share)
    service = ClipService(engine, settings)
    try:
        probe_images = _pngs(probes, 1)
        tagged_images = _pngs(images, 2)
        interactive, template = service.parse_classify(INTERACTIVE_LABELS, None)
        tags = [label.text for label in parse_tag_labels(AUTOTAG_LABELS, min_count=2, max_count=25)]
        tags, tag_template = service.parse_classify(tags, None)
        await service.classify(probe_images[0], interactive, template, requester=1)  # labels cached, as in use
        await service.classify(tagged_images[0], tags, tag_template, thumbnail=False, background=True)

        async def one_probe(png: bytes, user: int) -> float:
            await asyncio.sleep(gap_ms / 1000)
            started = time.perf_counter()
            async with service.admit():  # as /classify is admitted (`interactions.working`)
                await service.classify(png, interactive, template, requester=user)
            return time.perf_counter() - started

        async def probe_all() -> list[float]:
            return [await one_probe(png, 1000 + i) for i, png in enumerate(probe_images)]

        running = asyncio.Semaphore(concurrency)

        async def autotag(png: bytes) -> None:
            async with running:
                await service.classify(
                    png, tags, tag_template, thumbnail=False, requester=("autotag", 1), background=True
                )

        async def busy_phase() -> tuple[list[float], float]:
            started = time.perf_counter()
            background = asyncio.gather(*(autotag(png) for png in tagged_images))
            await asyncio.sleep(0.05)  # the background is in full flow before the first probe
            busy: list[float] = []
            while not background.done():  # only requests that ran wholly while images were being tagged
                latency = await one_probe(probe_images[len(busy) % probes], 2000 + len(busy))
                if not background.done():
                    busy.append(latency)
            await background
            return busy, time.perf_counter() - started

        # Idle and busy phases alternate, so a change in the machine's other load hits both alike.
        idle: list[float] = []
        busy: list[float] = []
        background_s = 0.0
        for _ in range(rounds):
            idle += await probe_all()
            latencies, seconds = await busy_phase()
            busy += latencies
            background_s += seconds
    finally:
        await engine.aclose()
    idle_summary, busy_summary = _summary(idle), _summary(busy)
    return {
        "images": images,
        "probes": probes,
        "concurrency": concurrency,
        "gap_ms": gap_ms,
        "busy_share": busy_share,
        "rounds": rounds,
        "idle": idle_summary,
        "busy": busy_summary,
        "busy_over_idle_p50": round(busy_summary["p50_ms"] / idle_summary["p50_ms"], 3),
        "busy_over_idle_mean": round(busy_summary["mean_ms"] / idle_summary["mean_ms"], 3),
        "busy_probes": len(busy),
        "background_images_per_s": round(images * rounds / background_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--busy-share", type=float, default=0.25, help="AUTOTAG_BUSY_SHARE (1: no pacing)")
    parser.add_argument("--rounds", type=int, default=3, help="idle and busy phases, alternating")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.model_dir, args.images, args.probes, args.concurrency, args.gap_ms, args.busy_share, args.rounds)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
