"""Image search: indexing throughput end to end, and filtered query latency at scale.

    .venv/bin/python -m benchmarks.search --model-dir DIR [--images 200] [--precision fp32 auto]
        [--sizes 10000 100000 1000000] [--index FLAT|HNSW] [--queries 200] [--data DIR] [--erase N]

Indexing: PNG bytes -> decode worker -> CLIP's visual encoder (as background work,
the way a backfill runs) -> L2-normalised vector -> Milvus Lite, `--images` shape
pictures, images/s over the whole run (Discord's fetch is left out: it is network).

Queries: synthetic unit vectors (512-d by default) spread over 10 guilds of 50
channels, stored through the bot's own `VectorStore.add`; each query filters one guild
and 20 of its channels (so ~4% of the rows match) and asks for 10 results, exactly as
/search does. Build time, the first query (the store reads its segments then), and
p50/p99 latency per size once each guild has been searched once. Prints JSON lines;
figures go in BENCHMARKS.md.

Erasure (`--erase N`): one server of N synthetic images, one author's 2% deleted, then
the rewrite that removes their bytes from the file (`VectorStore.erase_now`), with
searches in that server running back to back meanwhile: its duration, and their latency
against the same searches before.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.engines import started_engine
from bot.search import SearchService
from bot.service import ClipService
from bot.storage.db import Database
from bot.storage.erasures import Erasures
from bot.storage.vectors import ImageRef, VectorStore

GUILDS, CHANNELS, ALLOWED = 10, 50, 20
BATCH = 5000


async def indexing(
    model_dir: Path, images: int, data: Path, cache_dir: Path | None = None, precision: str = "auto"
) -> dict[str, object]:
    """Images/s from bytes to stored vectors, with the given model on this machine's CPU (`CLIP_PRECISION`)."""
    from tests.support.shapes import CLASSES, render

    settings, engine, info = await started_engine(model_dir, cache_dir, clip_precision=precision)
    store = VectorStore(str(data / f"index-{precision}.db"))
    database = Database(f"sqlite:///{data / f'clipbot-{precision}.db'}")  # what must not be indexed, asked per store
    await database.start()
    search = SearchService(
        ClipService(engine, settings), store, settings, Erasures(database), model_ready=engine.wait_ready
    )
    await search.open(info.model_id)
    rng = np.random.default_rng(0)
    pngs = []
    for i in range(images):
        buffer = io.BytesIO()
        render(CLASSES[i % len(CLASSES)], rng).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())

    async def one(i: int, png: bytes) -> None:
        vector = await search.embed_for_index(png)
        await search.store_images([ImageRef(1, 2, 1000 + i, 3, 5000 + i, 0)], [vector])

    started = time.perf_counter()
    await asyncio.gather(*(one(i, png) for i, png in enumerate(pngs)))
    elapsed = time.perf_counter() - started
    stored = await store.count()
    await store.close()
    await database.close()
    await engine.aclose()
    return {
        "what": "indexing",
        "model": info.model,
        "runtime": engine.runtime,
        "images": images,
        "stored": stored,
        "seconds": round(elapsed, 2),
        "images_per_s": round(images / elapsed, 1),
    }


def _rows(rng: np.random.Generator, count: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vecs = rng.standard_normal((count, dim)).astype(np.float32)
    guilds = rng.integers(0, GUILDS, count)
    channels = guilds * 1000 + rng.integers(0, CHANNELS, count)
    return vecs, guilds + 1, channels + 1


async def queries(size: int, dim: int, index: str, count: int, data: Path) -> dict[str, object]:
    """Build a store of `size` synthetic vectors and time filtered searches."""
    store = VectorStore(str(data / f"q{size}-{index}.db"), index=index)
    await store.open(f"synthetic-{dim}", dim)
    rng = np.random.default_rng(size)
    started = time.perf_counter()
    for start in range(0, size, BATCH):
        n = min(BATCH, size - start)
        vecs, guilds, channels = _rows(rng, n, dim)
        refs = [
            ImageRef(int(g), int(c), start + i, 1, start + i + 1, 0)
            for i, (g, c) in enumerate(zip(guilds, channels, strict=True))
        ]
        await store.add(refs, vecs)
    await store.flush()
    build = time.perf_counter() - started

    async def one(guild: int) -> tuple[float, int]:
        allowed = [guild * 1000 + c + 1 for c in rng.choice(CHANNELS, ALLOWED, replace=False)]
        query = rng.standard_normal(dim).astype(np.float32)
        started = time.perf_counter()
        hits = await store.search(query, guild + 1, allowed, 10)
        elapsed = time.perf_counter() - started
        assert all(h.ref.guild_id == guild + 1 and h.ref.channel_id in allowed for h in hits)
        return elapsed, len(hits)

    first, _ = await one(0)
    for guild in range(1, GUILDS):  # every guild's segments read once, as a running bot has
        await one(guild)
    latencies, found = [], []
    for _ in range(count):
        elapsed, hits = await one(int(rng.integers(0, GUILDS)))
        latencies.append(elapsed)
        found.append(hits)
    await store.close()
    ms = np.array(latencies) * 1000
    return {
        "what": "query",
        "vectors": size,
        "dim": dim,
        "index": index,
        "build_s": round(build, 1),
        "first_query_ms": round(first * 1000, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_results": round(float(np.mean(found)), 1),
        "queries": count,
    }


async def erasure(size: int, dim: int, data: Path) -> dict[str, object]:
    """Time the rewrite after a deletion in one server of `size` images, and searches meanwhile."""
    store = VectorStore(str(data / f"erase{size}.db"), erase_after_s=3600)
    await store.open(f"synthetic-{dim}", dim)
    rng = np.random.default_rng(size)
    for start in range(0, size, BATCH):
        refs = [ImageRef(1, 2, 10**15 + i, 3 + i % 50, 10**16 + i, 0) for i in range(start, min(size, start + BATCH))]
        await store.add(refs, rng.standard_normal((len(refs), dim)))
    await store.flush()
    query = rng.standard_normal(dim)

    async def timed() -> float:
        started = time.perf_counter()
        await store.search(query, 1, [2], 10)
        return time.perf_counter() - started

    for _ in range(3):
        await timed()
    quiet = [await timed() for _ in range(20)]
    started = time.perf_counter()
    await store.delete_author(3)
    deleted = time.perf_counter() - started
    started = time.perf_counter()
    rewrite = asyncio.get_running_loop().create_task(store.erase_now())
    during = []
    while not rewrite.done():
        during.append(await timed())
    rewrite_s = time.perf_counter() - started
    kept = await store.count()
    await store.close()
    return {
        "what": "erasure",
        "vectors": size,
        "kept": kept,
        "delete_ms": round(deleted * 1000, 1),
        "rewrite_s": round(rewrite_s, 1),
        "search_p50_ms_before": round(float(np.median(quiet)) * 1000, 1),
        "search_p50_ms_during": round(float(np.median(during)) * 1000, 1),
        "search_max_ms_during": round(max(during) * 1000, 1),
        "searches_during": len(during),
    }


async def main_async(args: argparse.Namespace) -> None:
    data = Path(args.data or tempfile.mkdtemp(prefix="search-bench-"))
    if args.erase:
        print(json.dumps(await erasure(args.erase, args.dim, data)), flush=True)
        return
    if args.images:
        for precision in args.precision:  # in one run, so the machine's load is alike for each
            print(json.dumps(await indexing(args.model_dir, args.images, data, precision=precision)), flush=True)
    for size in args.sizes:
        print(json.dumps(await queries(size, args.dim, args.index, args.queries, data)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=200, help="images to index (0: skip)")
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["auto"],
        choices=("auto", "fp32", "bf16", "int8"),
        help="CLIP_PRECISION for indexing; several run one after the other (e.g. fp32 auto)",
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--index", choices=("FLAT", "HNSW"), default="FLAT")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=None, help="folder for the stores (default: a temporary one)")
    parser.add_argument("--erase", type=int, default=0, help="time the rewrite after a deletion in a server of N")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
