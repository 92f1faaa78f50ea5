"""Benchmark: the seed's path (`Clip.compare`) against ours, side by side.

    python -m benchmarks.bench --model-dir models/vit-b-16-random --labels 8 --concurrency 8 --repeats 5

Prints one JSON object. Load time and memory are measured in fresh child
processes (one for the seed's `Clip(...)`, one for our engine), since a
second load in a warm process would flatter whoever goes second; everything
else runs in this process on the same model folder and image, every path once per
round, back to back, so machine drift hits all alike. Each figure
is a median over `--repeats`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.images import ImagePath, bare_visual_session
from benchmarks.photos import make_photo, phone_photo
from benchmarks.probes import decode_workers_mb, loop_lag_probe, rss_mb, time_async, time_call
from bot.config import Settings

LABEL_POOL = [
    "dog",
    "cat",
    "car",
    "bloody mary",
    "drink",
    "man",
    "woman",
    "bicycle",
    "tree",
    "house",
    "pizza",
    "mountain",
    "beach",
    "computer",
    "phone",
    "flower",
    "bird",
    "horse",
    "boat",
    "plane",
    "guitar",
    "book",
    "clock",
    "chair",
    "lamp",
]


def bench_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"user_cooldown_s": 0, "max_pending": 10_000}
    if args.model_dir:
        overrides["clip_model_dir"] = Path(args.model_dir)
    if args.model_id:
        overrides["clip_model_id"] = args.model_id
    if args.batch_window_ms is not None:
        overrides["batch_window_ms"] = args.batch_window_ms
    if args.max_batch_size is not None:
        overrides["max_batch_size"] = args.max_batch_size
    if args.providers:
        overrides["clip_execution_providers"] = tuple(args.providers.split(","))
    if args.precision:
        overrides["clip_precision"] = args.precision
    if args.runtime:
        overrides["clip_runtime"] = args.runtime
    return Settings(**overrides)


def labels_for(count: int, salt: str = "") -> list[str]:
    return [f"{label}{salt}" for label in (LABEL_POOL * (count // len(LABEL_POOL) + 1))[:count]]


# --------------------------------------------------------------------------- children
def child_seed(args: argparse.Namespace, image_path: str) -> dict[str, float]:
    """The seed's code, as in the post: `Clip(model_id=...)` then `compare`."""
    from bot.engine.loading import configure_inference_env, import_clip_class, stage_local_model

    started = time.perf_counter()
    settings = bench_settings(args)
    configure_inference_env(settings)
    clip_class = import_clip_class()
    model_id = stage_local_model(settings.clip_model_dir) if settings.clip_model_dir else settings.clip_model_id
    with contextlib.redirect_stdout(sys.stderr):  # inference print()s; stdout is for the JSON
        clip = clip_class(model_id=model_id, onnxruntime_execution_providers=list(settings.clip_execution_providers))
    loaded = time.perf_counter() - started
    clip.compare(subject=image_path, prompt=[f"a photo of a {label}" for label in labels_for(args.labels)])
    return {"load_s": loaded, "ready_s": time.perf_counter() - started, "rss_mb": rss_mb()}


def child_ours(args: argparse.Namespace, image_path: str) -> dict[str, float]:
    """Our engine from nothing to the first classification."""
    started = time.perf_counter()
    from bot.engine import ClipEngine
    from bot.service import ClipService

    settings = bench_settings(args)
    data = Path(image_path).read_bytes()

    result: dict[str, float] = {}

    async def first_answer() -> None:
        engine = ClipEngine(settings)
        service = ClipService(engine, settings)
        await engine.start()
        await service.classify(data, labels_for(args.labels), "a photo of a {}")
        result.update(ready_s=time.perf_counter() - started, rss_mb=rss_mb(), decode_workers_mb=decode_workers_mb())
        # Background start-up work (the real-length text graph) done: memory from then on.
        await engine.settled()
        result.update(settled_s=time.perf_counter() - started, rss_settled_mb=rss_mb())
        await engine.aclose()

    asyncio.run(first_answer())
    return result


def run_child(kind: str, args: argparse.Namespace, image_path: str) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.bench", "--child", kind, "--image", image_path]
    command += ["--labels", str(args.labels)]
    for flag, value in (
        ("--model-dir", args.model_dir),
        ("--model-id", args.model_id),
        ("--providers", args.providers),
        ("--precision", args.precision),
        ("--runtime", args.runtime),
    ):
        if value:
            command += [flag, str(value)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main run
async def measure(args: argparse.Namespace, image_path: str) -> dict[str, Any]:
    from bot.engine import ClipEngine
    from bot.engine.loading import import_clip_class
    from bot.service import ClipService

    settings = bench_settings(args)
    engine = ClipEngine(settings)
    service = ClipService(engine, settings)
    info = await engine.start()
    await engine.settled()
    image_batches: list[int] = []
    # As the bot's metrics do (`bot.discord.client`): every visual batch's size.
    engine.observe_batches(lambda name, size, *_: image_batches.append(size) if name == "visual" else None)
    visual_batcher = next(batcher for batcher in engine.backend.batchers if batcher.name == "visual")
    # The seed's own `inference.models.Clip`, untouched (ours swaps in the real-length
    # text graph), loaded from the same cache files.
    with contextlib.redirect_stdout(sys.stderr):  # inference print()s; stdout is for the JSON
        clip = import_clip_class()(model_id=info.model_id, onnxruntime_execution_providers=list(info.providers))
    session = bare_visual_session(clip, list(info.providers))
    # What the engine's visual encoder runs on (`bot.engine.runtimes`): the chosen runtime's bare run.
    choice = getattr(engine.backend, "runtime_choice", None)
    engine_session = engine.backend._model.visual_onnx_session if choice is not None else session  # type: ignore[attr-defined]
    images = ImagePath(clip.clip_preprocess, settings)
    data = await asyncio.to_thread(Path(image_path).read_bytes)
    labels = labels_for(args.labels)
    prompts = [f"a photo of a {label}" for label in labels]
    repeats = args.repeats

    # Warm-ups: first runs allocate; the labels for "warm" are embedded once here.
    clip.compare(subject=image_path, prompt=prompts)
    pixels = clip.preproc_image(image_path)  # the bare model's input: already preprocessed
    feed = {session.get_inputs()[0].name: pixels}
    session.run(None, feed)
    engine_feed = {engine_session.get_inputs()[0].name: pixels}
    engine_session.run(None, engine_feed)
    text_feed = {clip.textual_onnx_session.get_inputs()[0].name: np.zeros((1, 77), dtype=np.int32)}
    await service.classify(data, labels, "a photo of a {}")
    await service.similar("hello world", labels)

    # Each round measures every path once, back to back, so slow drift of the
    # machine (other load, clocks) hits all of them alike; figures are medians.
    # With --idle-gap-ms, every timed call starts from an idle machine, as a lone
    # chat request does; by default the calls run back to back.
    gap_s = args.idle_gap_ms / 1000
    timed: dict[str, Any] = {
        "raw": lambda: session.run(None, feed),
        "engine_raw": lambda: engine_session.run(None, engine_feed),
        "prepare": lambda: images.in_process(data),
        "exact": lambda: images.in_process(data, draft=False),
        "isolated": lambda: images.isolated(data, thumbnail=False),
        "thumbnail": lambda: images.isolated(data, thumbnail=True),
    }
    samples: dict[str, list[float]] = {name: [] for name in ("seed", "text", "cold", "warm", "similar", *timed)}
    for index in range(repeats):
        # The seed's path: compare() re-embeds the image and every label on each call.
        await asyncio.sleep(gap_s)
        samples["seed"].append(time_call(lambda: clip.compare(subject=image_path, prompt=prompts)))
        await asyncio.sleep(gap_s)
        samples["text"].append(time_call(lambda: clip.textual_onnx_session.run(None, text_feed)))
        cold_labels = labels_for(args.labels, salt=f" #{index}")  # never seen before
        await asyncio.sleep(gap_s)
        samples["cold"].append(await time_async(service.classify(data, cold_labels, "a photo of a {}")))
        # Everything below right after a visual run: the first visual run after a text run
        # is ~10% slower (measured), and preparation right after one runs on cold caches.
        session.run(None, feed)
        await asyncio.sleep(gap_s)
        samples["raw"].append(time_call(timed["raw"]))
        engine_session.run(None, engine_feed)
        samples["engine_raw"].append(time_call(timed["engine_raw"]))
        await asyncio.sleep(gap_s)
        samples["warm"].append(await time_async(service.classify(data, labels, "a photo of a {}")))
        await asyncio.sleep(gap_s)
        samples["similar"].append(await time_async(service.similar("hello world", labels)))
        # The image's share of warm: decode + preprocess alone (and at full scale, for
        # comparison); then in a decode worker process, as requests get it, without and
        # with the reply's thumbnail.
        for name in ("prepare", "exact", "isolated", "thumbnail"):
            session.run(None, feed)
            await asyncio.sleep(gap_s)
            samples[name].append(time_call(timed[name]))
    median = {name: statistics.median(values) for name, values in samples.items()}

    # Throughput and loop lag at the given concurrency (warm labels: the image dominates).
    total = max(args.concurrency * repeats, args.concurrency * 2)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async def client() -> None:
        while not queue.empty():
            queue.get_nowait()
            await service.classify(data, labels, "a photo of a {}")

    batches_before = len(image_batches)
    raw_around = [time_call(timed["raw"]) for _ in range(repeats)]
    async with loop_lag_probe() as lags:
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        wall = time.perf_counter() - started
    raw_around += [time_call(timed["raw"]) for _ in range(repeats)]
    batch_sizes = image_batches[batches_before:]
    images.close()
    await engine.aclose()

    throughput_rps = total / wall
    # The bare model's sequential rate, measured just before and after the load.
    raw_sequential_rps = 1 / statistics.median(raw_around)
    return {
        "model": info.model,
        "device": info.device,
        "text_mode": getattr(engine.backend, "text_mode", "n/a"),  # the local backend's
        "providers": list(info.providers),
        "runtime": engine.runtime,
        "runtime_agreement": asdict(choice.agreement) if choice is not None and choice.agreement else None,
        "runtime_timings_s": dict(choice.timings_s) if choice is not None else {},
        "image_bytes": len(data),
        "labels": args.labels,
        "concurrency": args.concurrency,
        "repeats": repeats,
        "batch_window_ms": settings.batch_window_ms,
        "max_batch_size": visual_batcher.max_batch,
        "seed_compare_s": median["seed"],
        "raw_visual_s": median["raw"],
        "engine_visual_s": median["engine_raw"],
        "raw_text_s": median["text"],
        "classify_cold_s": median["cold"],
        "classify_warm_s": median["warm"],
        "prepare_image_s": median["prepare"],
        "prepare_exact_s": median["exact"],
        "prepare_isolated_s": median["isolated"],
        "isolation_cost_s": median["isolated"] - median["prepare"],
        "prepare_thumbnail_s": median["thumbnail"],
        "similar_warm_s": median["similar"],
        "throughput_rps": throughput_rps,
        "raw_sequential_rps": raw_sequential_rps,
        "throughput_vs_raw": throughput_rps / raw_sequential_rps,
        "mean_batch": statistics.mean(batch_sizes) if batch_sizes else 0,
        "loop_lag_p99_ms": float(np.percentile(lags, 99) * 1000) if lags else 0.0,
        "loop_lag_max_ms": max(lags) * 1000 if lags else 0.0,
        "warm_vs_raw": median["warm"] / median["raw"],
        # Each round's warm over the bare run just before it: drift between rounds cancels.
        "warm_vs_raw_paired": statistics.median(w / r for w, r in zip(samples["warm"], samples["raw"], strict=True)),
        "seed_vs_warm": median["seed"] / median["warm"],
        "cold_vs_seed": median["cold"] / median["seed"],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="folder with visual.onnx and textual.onnx (e.g. models/vit-b-16-random)")
    parser.add_argument("--model-id", help="a Roboflow CLIP id from the cache, e.g. clip/ViT-B-16")
    parser.add_argument("--labels", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image", help="image file (default: a generated 640x480 JPEG)")
    parser.add_argument(
        "--phone-photo",
        metavar="WxH",
        help="use a generated phone-like JPEG of that size instead (benchmarks.photos.phone_photo), e.g. 4032x3024",
    )
    parser.add_argument("--batch-window-ms", type=float, help="override BATCH_WINDOW_MS")
    parser.add_argument("--max-batch-size", type=int, help="override MAX_BATCH_SIZE (1 turns batching off)")
    parser.add_argument("--providers", help="override CLIP_EXECUTION_PROVIDERS, comma-separated")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], help="override CLIP_PRECISION")
    parser.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], help="override CLIP_RUNTIME")
    parser.add_argument("--idle-gap-ms", type=float, default=0.0, help="pause before each timed call (default 0)")
    parser.add_argument("--no-children", action="store_true", help="skip the load-time/memory child processes")
    parser.add_argument("--child", choices=["seed", "ours"], help=argparse.SUPPRESS)
    return parser


RANDOM_VIT_B16 = Path("models/vit-b-16-random")


def choose_model(args: argparse.Namespace) -> None:
    """Default model: the real ViT-B-16 when it is in the cache, else the random full-size one."""
    if args.model_dir or args.model_id:
        return
    settings = Settings()
    from bot.engine.loading import configure_inference_env

    configure_inference_env(settings)
    from inference.core.cache.model_artifacts import get_cache_dir

    cached = Path(get_cache_dir(model_id=settings.clip_model_id))
    if all((cached / name).is_file() for name in ("visual.onnx", "textual.onnx")):
        args.model_id = settings.clip_model_id
    elif RANDOM_VIT_B16.is_dir():
        args.model_dir = str(RANDOM_VIT_B16)
    else:
        raise SystemExit(
            f"error: {settings.clip_model_id} is not in {settings.model_cache_dir} "
            f"and {RANDOM_VIT_B16} does not exist; build a full-size random-weight ViT-B/16 with: "
            ".venv/bin/python -m scripts.build_vitb16"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child is None:
        choose_model(args)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        image_path = args.image
        if image_path is None:
            image_path = str(Path(scratch) / "photo.jpg")
            if args.phone_photo:
                width, height = (int(side) for side in args.phone_photo.lower().split("x"))
                Path(image_path).write_bytes(phone_photo(width, height))
            else:
                Path(image_path).write_bytes(make_photo())
        if args.child == "seed":
            print(json.dumps(child_seed(args, image_path)))
            return 0
        if args.child == "ours":
            print(json.dumps(child_ours(args, image_path)))
            return 0
        result: dict[str, Any] = {}
        if not args.no_children:
            seed_child = run_child("seed", args, image_path)
            ours_child = run_child("ours", args, image_path)
            result.update(
                seed_load_s=seed_child["load_s"],
                seed_ready_s=seed_child["ready_s"],
                seed_rss_mb=seed_child["rss_mb"],
                ready_s=ours_child["ready_s"],
                rss_mb=ours_child["rss_mb"],
                settled_s=ours_child["settled_s"],
                rss_settled_mb=ours_child["rss_settled_mb"],
                decode_workers_mb=ours_child["decode_workers_mb"],
            )
        result.update(asyncio.run(measure(args, image_path)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
