"""The admission gate's rules (bot.discord.admission), on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord.admission import Admission, DownloadBudget
from bot.errors import RateLimitedError

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_per_cooldown_per_person() -> None:
    clock = Clock()
    gate = Admission(cooldown_s=3, burst=2, max_in_flight=0, clock=clock)
    gate.admit(1, None)
    gate.admit(1, None)
    with pytest.raises(RateLimitedError, match=r"try again in 3\.0 s"):
        gate.admit(1, None)
    gate.admit(2, None)  # per person
    clock.now += 3
    gate.admit(1, None)
    with pytest.raises(RateLimitedError):
        gate.admit(1, None)


async def test_requests_in_flight_are_capped_and_freed_when_their_task_ends() -> None:
    gate = Admission(cooldown_s=0, burst=1, max_in_flight=2)
    release = asyncio.Event()
    tasks = [asyncio.create_task(release.wait()) for _ in range(2)]
    for task in tasks:
        gate.admit(7, task)  # type: ignore[arg-type]
    with pytest.raises(RateLimitedError, match="2 requests in progress"):
        gate.admit(7, None)
    gate.admit(8, None)  # someone else
    release.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)  # done callbacks run
    assert gate.in_flight(7) == 0
    gate.admit(7, None)


async def test_a_refusal_for_being_busy_spends_no_token() -> None:
    clock = Clock()
    gate = Admission(cooldown_s=30, burst=1, max_in_flight=1, clock=clock)
    release = asyncio.Event()
    task = asyncio.create_task(release.wait())
    gate.admit(5, task)  # type: ignore[arg-type]
    with pytest.raises(RateLimitedError, match="in progress"):
        gate.admit(5, None)
    release.set()
    await task
    await asyncio.sleep(0)
    clock.now += 30
    gate.admit(5, None)  # the refused one did not spend the refill


async def test_the_download_budget_waits_in_order_and_caps_a_reservation_at_the_whole() -> None:
    budget = DownloadBudget(100)
    assert await budget.reserve(60) == 60
    second = asyncio.create_task(budget.reserve(50))
    third = asyncio.create_task(budget.reserve(10))
    await asyncio.sleep(0)
    assert not second.done() and not third.done(), "the small one waits behind the first waiter"
    budget.release(60)
    assert await second == 50 and await third == 10
    budget.release(60)
    assert await budget.reserve(1_000) == 100, "more than the whole waits for all of it, not for ever"


async def test_a_cancelled_waiter_hands_its_turn_on() -> None:
    budget = DownloadBudget(100)
    await budget.reserve(100)
    gone = asyncio.create_task(budget.reserve(80))
    kept = asyncio.create_task(budget.reserve(20))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    budget.release(30)
    assert await kept == 20 and budget.available == 10
