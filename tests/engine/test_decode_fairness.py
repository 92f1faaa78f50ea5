"""Fairness in the decode pool (`ImageWorkers.submit`'s `requester`): one person's stalling uploads
hold at most `per_requester` workers, so anyone else's upload starts at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bot.engine.decoding import ImageWorkers, PrepareSpec
from tests.support import decode_hooks

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPEC = PrepareSpec(crop=224, max_pixels=1_000_000)
STALL_S = 2.0


@pytest.fixture
def workers() -> Iterator[ImageWorkers]:
    pool = ImageWorkers(2, timeout_s=30, memory_mb=1024, per_requester=1, task=decode_hooks.sleep_on_magic)  # type: ignore[arg-type]
    pool.start()
    try:
        yield pool
    finally:
        pool.close()


async def test_a_flood_from_one_requester_leaves_a_worker_for_another(workers: ImageWorkers) -> None:
    await asyncio.wrap_future(workers.submit(b"warm", SPEC))  # the workers are forked
    stall = decode_hooks.SLEEP + str(STALL_S).encode()
    flood = [workers.submit(stall, SPEC, "flooder") for _ in range(4)]
    await asyncio.sleep(0.1)
    assert not workers.waiting_turn(flood[0]) and all(map(workers.waiting_turn, flood[1:])), "a batch skips those"
    started = time.perf_counter()
    quick = await asyncio.wrap_future(workers.submit(b"quick", SPEC, "someone else"))
    waited = time.perf_counter() - started
    assert quick == b"quick"
    # First come, first served, it would wait for two of the flood's stalls at least.
    assert waited < STALL_S / 2, waited
    assert not any(future.done() for future in flood[1:]), "the flood's others wait their turn"
    assert await asyncio.gather(*map(asyncio.wrap_future, flood)) == [stall] * 4


async def test_a_cancelled_waiting_upload_does_not_hold_up_the_requesters_next(workers: ImageWorkers) -> None:
    first = workers.submit(decode_hooks.SLEEP + b"0.5", SPEC, "one")
    dropped = workers.submit(decode_hooks.SLEEP + b"5", SPEC, "one")
    last = workers.submit(b"last", SPEC, "one")
    assert dropped.cancel(), "still waiting here, so it can be cancelled"
    started = time.perf_counter()
    assert await asyncio.wrap_future(last) == b"last"
    assert first.done() and time.perf_counter() - started < 3, "the cancelled one never ran"
