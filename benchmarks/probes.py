"""Measuring helpers shared by the benchmarks and the tests: loop lag, memory, timing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

#: Loop-lag probe period. 1 ms wakeups cost CPU that the model then lacks on 2 cores.
TICK_S = float(os.environ.get("BENCH_TICK_S", "0.01"))


@contextlib.asynccontextmanager
async def loop_lag_probe(period_s: float = TICK_S) -> AsyncIterator[list[float]]:
    """Record how late a `period_s` timer fires on the running loop while the block runs.

    A late timer means something held the event loop (or the GIL) that long.
    """
    lags: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(period_s)
            lags.append(time.perf_counter() - before - period_s)

    task = asyncio.create_task(tick(), name="loop-lag-probe")
    try:
        yield lags
    finally:
        stop.set()
        await task


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def decode_workers_mb() -> float:
    """Proportional memory (PSS) of this process's child processes (the decode workers) and
    of multiprocessing's fork server, in MB."""
    import multiprocessing
    from multiprocessing import forkserver

    pids = [child.pid for child in multiprocessing.active_children()]
    pids.append(getattr(forkserver._forkserver, "_forkserver_pid", None))  # the stdlib keeps no public handle
    total = 0.0
    for pid in filter(None, pids):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as rollup:
            total += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
    return total


def time_call(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def time_async(awaitable: Awaitable[Any]) -> float:
    """Seconds until `awaitable` is done."""
    started = time.perf_counter()
    await awaitable
    return time.perf_counter() - started
