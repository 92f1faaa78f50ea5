"""SIGTERM while requests are in flight: every accepted request gets exactly one final reply."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from bot.discord.client import CUT_BY_RESTART, RESTARTING, install_signal_handlers
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot, slow_down_images
from tests.support.outcomes import EPHEMERAL, final_messages, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)


def _remove_handlers(signals: list[signal.Signals]) -> None:
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.remove_signal_handler(sig)


async def _classify(fake: FakeDiscord, seed: int):  # type: ignore[no-untyped-def]
    label = CLASSES[seed % len(CLASSES)]
    image = {"image": (shape_png(label, seed), f"{seed}.png", "image/png")}
    return label, await fake.send_command("classify", {"labels": ALL_LABELS}, attachments=image)


async def test_sigterm_finishes_requests_in_flight_and_turns_new_ones_away(fake: FakeDiscord) -> None:
    async with running_bot(fake, shutdown_grace_s=30) as bot:
        slow_down_images(bot, 0.3)
        in_flight = [await _classify(fake, seed) for seed in range(6)]
        for _, rec in in_flight:
            await rec.wait_for(lambda r: bool(r.callbacks), 10)  # accepted (deferred)
        handled = install_signal_handlers(bot)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)  # the handler runs on this loop
            assert bot.draining
            late = [rec for _, rec in [await _classify(fake, 10 + i) for i in range(2)]]
            for rec in late:
                kind, message = await wait_outcome(rec, 10)
                assert kind == "error" and RESTARTING in message["content"]
                assert message["flags"] & EPHEMERAL
            for _ in range(300):  # closes once the six have been answered
                if bot.is_closed():
                    break
                await asyncio.sleep(0.1)
            assert bot.is_closed()
        finally:
            _remove_handlers(handled)
    for label, rec in in_flight:
        kind, message = await wait_outcome(rec, 1)
        assert kind == "answer" and message["embeds"][0]["title"] == f"Looks like: {label}"
        assert final_messages(rec) == 1
    assert all(final_messages(rec) == 1 for rec in late)


async def test_requests_outliving_the_grace_period_are_told_to_retry(fake: FakeDiscord) -> None:
    async with running_bot(fake, shutdown_grace_s=0.5) as bot:
        slow_down_images(bot, 5.0)
        recs = [rec for _, rec in [await _classify(fake, seed) for seed in range(2)]]
        for rec in recs:
            await rec.wait_for(lambda r: bool(r.callbacks), 10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bot.shutdown()
        took = loop.time() - started
        assert bot.is_closed()
    assert took < 3.0, "the grace period bounds the shutdown"
    for rec in recs:
        kind, message = await wait_outcome(rec, 1)
        assert kind == "error" and CUT_BY_RESTART in message["content"]
        assert final_messages(rec) == 1
