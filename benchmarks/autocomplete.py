"""Autocomplete latency at 1,000 presets: what `/classify labels` costs per keystroke.

    .venv/bin/python -m benchmarks.autocomplete [--presets 1000] [--rounds 200] [--postgres]

Fills a fresh database (a temporary SQLite file, or a throw-away PostgreSQL server with
--postgres) with presets spread over 20 servers and 200 people, then times the two
queries one autocomplete makes (`PresetStore.matching` and `PresetStore.recent`) plus
building the choices. Prints JSON; figures go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator

from bot.label_sets import suggestions
from bot.storage import Database, PresetStore

WORDS = ["animals", "anime", "birds", "cars", "food", "flowers", "memes", "shapes", "tools", "trees"]


@contextlib.contextmanager
def database_url(postgres: bool) -> Iterator[str]:
    if postgres:
        from tests.support.postgres import temporary_postgres

        with temporary_postgres() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"


async def run(presets: int, rounds: int, url: str) -> dict[str, object]:
    database = Database(url)
    await database.start()
    store = PresetStore(database)
    rng = random.Random(1)
    for i in range(presets):
        scope = "guild" if i % 4 == 0 else "user"
        owner = rng.randrange(20) if scope == "guild" else rng.randrange(200)
        name = f"{rng.choice(WORDS)}-{i}"
        await store.save(scope, owner, name, [f"label {j}" for j in range(rng.randint(2, 12))], by=owner)
    people = max(1, min(200, presets // 5))
    for user in range(people):
        for k in range(10):
            store.remember(user, user % 20, [f"recent {k}", f"set {user}"])
            await store.flush()
    timings = []
    for _ in range(rounds):
        user, guild = rng.randrange(people), rng.randrange(20)
        typed = rng.choice(["", "@a", "@an", "cat, @b", "@memes-1"])
        started = time.perf_counter()
        found = await store.matching(typed.rpartition(",")[2].strip(), user, guild)
        recent = await store.recent(user, guild)
        suggestions(typed, found, recent)
        timings.append(time.perf_counter() - started)
    await database.close()
    timings.sort()
    return {
        "backend": database.backend,
        "presets": presets,
        "rounds": rounds,
        "median_ms": round(statistics.median(timings) * 1000, 2),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))] * 1000, 2),
        "max_ms": round(timings[-1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL server instead of SQLite")
    args = parser.parse_args()
    with database_url(args.postgres) as url:
        print(json.dumps(asyncio.run(run(args.presets, args.rounds, url))))


if __name__ == "__main__":
    main()
