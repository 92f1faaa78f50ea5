"""Background jobs yield to people (bot/pacing.py): one at a time, resting in proportion to their
length while the bot is in interactive use, back to back when it is not."""

from __future__ import annotations

import asyncio

import pytest

from bot.pacing import RECENT_S, BackgroundPacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _job(pacer: BackgroundPacer, clock: Clock, length: float, log: list[str], name: str) -> None:
    async with pacer.turn():
        log.append(f"start {name} at {clock.now:.1f}")
        clock.now += length


async def test_in_use_each_job_is_followed_by_a_rest_so_it_takes_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock.now += seconds

    monkeypatch.setattr("bot.pacing.asyncio.sleep", sleep)
    pacer = BackgroundPacer(0.25, clock=clock)
    pacer.interactive()
    log: list[str] = []
    await asyncio.gather(*(_job(pacer, clock, 0.5, log, name) for name in "abc"))
    # Each 0.5 s job leaves 1.5 s free: 25% of the time.
    assert log == ["start a at 1000.0", "start b at 1002.0", "start c at 1004.0"]
    assert slept == [1.5, 1.5]


async def test_when_nobody_used_the_bot_lately_jobs_run_back_to_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()

    async def no_sleep(seconds: float) -> None:
        raise AssertionError("no rest when nobody is using the bot")

    monkeypatch.setattr("bot.pacing.asyncio.sleep", no_sleep)
    pacer = BackgroundPacer(0.25, clock=clock)
    pacer.interactive()
    clock.now += RECENT_S + 0.1
    assert not pacer.in_use
    log: list[str] = []
    for name in "ab":
        await _job(pacer, clock, 1.0, log, name)
    assert log == ["start a at 1005.1", "start b at 1006.1"]


def test_the_share_is_a_fraction() -> None:
    for share in (0.0, 1.5):
        with pytest.raises(ValueError):
            BackgroundPacer(share)
