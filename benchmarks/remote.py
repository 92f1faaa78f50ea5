"""Benchmark: the remote backend (Roboflow Inference Servers over HTTP) against the local one.

    python -m benchmarks.remote --concurrency 8 32 --repeats 3            # the tiny model
    python -m benchmarks.remote --model-dir models/vit-b-16-random --repeats 3

Both backends run on this machine, on the same model folder: the local one in this
process, the remote one in `--servers` Roboflow Inference Servers started here
(`tests/support/inference_server.py`). One request is what `/classify` costs with labels seen
before: an upload (a 640 x 480 JPEG) decoded and cropped in the decode workers, embedded,
and its reply thumbnail. Rounds alternate local and remote so machine drift hits both;
figures are medians over rounds. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.bench import make_photo
from bot.config import Settings
from tests.support.inference_server import TINY_REMOTE_MODEL_ID, inference_servers
from tests.support.paths import TINY_MODEL_DIR

Request = Callable[[bytes], Awaitable[Any]]


def model_resolution(model_dir: Path) -> int:
    """The visual graph's input side, read from the ONNX file's header (no session)."""
    import onnx

    graph = onnx.load(str(model_dir / "visual.onnx"), load_external_data=False).graph
    return int(graph.input[0].type.tensor_type.shape.dim[2].dim_value)


def settings_for(backend: str, model_dir: Path, urls: list[str], cache: Path) -> Settings:
    values: dict[str, Any] = {
        "user_cooldown_s": 0,
        "max_pending": 10_000,
        "model_cache_dir": cache,
        "data_dir": cache / "data",
        "clip_execution_providers": ("CPUExecutionProvider",),
    }
    if backend == "local":
        values["clip_model_dir"] = model_dir
    else:
        values.update(
            clip_backend="remote",
            inference_server_url=tuple(urls),
            clip_model_id=TINY_REMOTE_MODEL_ID,
            clip_remote_resolution=model_resolution(model_dir),
            inference_timeout_s=120,
        )
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def open_backend(settings: Settings) -> tuple[Request, Callable[[], Awaitable[None]]]:
    """The engine facade for `settings.clip_backend`: its request and its close."""
    from bot.engine import ClipEngine

    engine = ClipEngine(settings)
    await engine.start()
    await engine.settled()

    async def request(data: bytes) -> Any:
        return await engine.embed_image_and_thumbnail(data, thumbnail=True)

    return request, engine.aclose


async def latency(request: Request, images: list[bytes], count: int) -> float:
    """Median seconds of one request alone (concurrency 1)."""
    times = []
    for index in range(count):
        started = time.perf_counter()
        await request(images[index % len(images)])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def throughput(request: Request, images: list[bytes], concurrency: int, total: int) -> float:
    """Requests per second with `concurrency` clients in a loop, `total` requests in all."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async def client() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await request(images[index % len(images)])

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    model_dir = Path(args.model_dir)
    images = [make_photo(seed=seed) for seed in range(8)]
    rounds: dict[str, list[dict[str, float]]] = {"local": [], "remote": []}
    with tempfile.TemporaryDirectory() as scratch:
        async with contextlib.AsyncExitStack() as stack:
            if args.server_url:  # servers already running, with this model at TINY_REMOTE_MODEL_ID
                urls = args.server_url
            else:
                servers = await stack.enter_async_context(inference_servers(args.servers, model_dir=model_dir))
                urls = [server.url for server in servers]
            backends = {}
            for kind in ("local", "remote"):
                backends[kind] = await open_backend(settings_for(kind, model_dir, urls, Path(scratch)))
                await latency(backends[kind][0], images, 4)  # warm-up (first runs, connections)
            try:
                for _ in range(args.repeats):
                    for kind, (request, _) in backends.items():
                        figures = {"latency_s": await latency(request, images, args.latency_requests)}
                        for concurrency in args.concurrency:
                            total = args.requests or max(4 * concurrency, 64)
                            figures[f"rps_c{concurrency}"] = await throughput(request, images, concurrency, total)
                        rounds[kind].append(figures)
            finally:
                for _, close in backends.values():
                    await close()
    result: dict[str, Any] = {
        "model_dir": str(model_dir),
        "servers": len(args.server_url) if args.server_url else args.servers,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
    }
    for kind, figures in rounds.items():
        for key in figures[0]:
            result[f"{kind}_{key}"] = statistics.median(f[key] for f in figures)
    result["overhead_per_request_ms"] = (result["remote_latency_s"] - result["local_latency_s"]) * 1000
    for concurrency in args.concurrency:
        local, remote = result[f"local_rps_c{concurrency}"], result[f"remote_rps_c{concurrency}"]
        result[f"remote_vs_local_c{concurrency}"] = remote / local
        # Extra time per request under load: the difference of the inverse rates.
        result[f"overhead_per_request_c{concurrency}_ms"] = (1 / remote - 1 / local) * 1000
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.remote", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=str(TINY_MODEL_DIR), help="visual.onnx + textual.onnx (default: tiny)")
    parser.add_argument("--servers", type=int, default=1, help="inference servers to start (default 1)")
    parser.add_argument("--server-url", nargs="+", help=f"use these running servers (serving {TINY_REMOTE_MODEL_ID})")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, help="requests per throughput figure (default: 4 x concurrency, >= 64)")
    parser.add_argument("--latency-requests", type=int, default=20, help="sequential requests per latency figure")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # SIGTERM (e.g. `timeout`) unwinds like ^C, so the servers this started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(asyncio.run(measure(args)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
