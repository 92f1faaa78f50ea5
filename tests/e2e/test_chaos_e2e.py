"""Chaos: interactions flow steadily while the stand-in's gateway fails in every documented way.

The stand-in heartbeats every 250 ms, 165 times faster than Discord's 41.25 s, so a
minute here is over two hours of gateway time. Faults come one at a time, in a seeded
random order, each once the bot is back: drops with every resumable close code (and
none), op 7, op 9 both ways, a zombie link (no ACKs), session expiry (4009) and an
IDENTIFY rate limit. Every interaction written to the bot's socket must get exactly one
answer, and the bot must never exit. Interactions dispatched while the bot had no
session at all are counted apart: Discord fails those itself ("The application did not
respond"), and no bot can answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import pytest

from bot.engine import ClipEngine
from tests.fakediscord.records import InteractionRecord
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import final_messages, outcome

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEARTBEAT_MS = 250
RATE_PER_S = 4
FAULTS = (
    ["drop"] * 5 + ["reconnect", "invalid_resumable", "invalid_session", "zombie", "expire", "identify_rate_limit"]
)
RESUMABLE_CODES = (4000, 4001, 4002, 4003, 4005, 4008, None)


async def inject(fake: FakeDiscord, kind: str, rng: random.Random) -> None:
    """One fault; returns once the bot has resumed or started a new session."""
    before = (fake.sessions_resumed, fake.sessions_started)
    if kind == "drop":
        await fake.drop_gateway(rng.choice(RESUMABLE_CODES))
    elif kind == "reconnect":
        await fake.send_reconnect()
    elif kind == "invalid_resumable":
        await fake.invalidate_session(resumable=True)
    elif kind == "invalid_session":
        await fake.invalidate_session(resumable=False)
    elif kind == "zombie":
        fake.ack_heartbeats = False  # events still flow; the bot must notice within ~2 intervals + grace
        await fake.wait_for(lambda f: f.sessions_resumed > before[0], 30)
        fake.ack_heartbeats = True
    elif kind == "expire":
        await fake.expire_session()
    elif kind == "identify_rate_limit":
        fake.rate_limit_identify()
        await fake.invalidate_session(resumable=False)
    await fake.wait_for(lambda f: (f.sessions_resumed, f.sessions_started) != before and f.connected, 40)


@pytest.mark.parametrize("fake", [HEARTBEAT_MS], indirect=True)
async def test_chaos_every_delivered_interaction_gets_exactly_one_answer(
    fake: FakeDiscord, engine: ClipEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "16"))
    rng = random.Random(seed)
    faults = FAULTS.copy()
    rng.shuffle(faults)
    records: list[InteractionRecord] = []
    started = time.monotonic()

    async with running_bot(fake, engine=engine) as bot:

        async def traffic() -> None:
            n = 0
            while True:
                n += 1
                records.append(await fake.send_command("similar", {"text": f"cat {n}", "others": "dog, car"}))
                await asyncio.sleep(1 / RATE_PER_S)

        flowing = asyncio.create_task(traffic())
        try:
            for kind in faults:
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                await inject(fake, kind, rng)
                assert not bot.is_closed(), f"the bot exited on a resumable fault ({kind})"
            await asyncio.sleep(1.0)
        finally:
            flowing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flowing
        delivered = [r for r in records if r.sent]
        with contextlib.suppress(TimeoutError):
            await fake.wait_for(lambda f: all(outcome(r) is not None for r in delivered), 30)
        assert not bot.is_closed()

    answers = [r for r in delivered if outcome(r) is not None and outcome(r)[0] == "answer"]  # type: ignore[index]
    lost = [r for r in delivered if outcome(r) is None]
    twice = [r for r in delivered if final_messages(r) > 1]
    summary = (
        f"chaos (seed {seed}, {time.monotonic() - started:.0f} s wall, heartbeat {HEARTBEAT_MS} ms): "
        f"faults injected {len(faults)}, resumes {fake.sessions_resumed}, re-identifies {fake.sessions_started - 1}, "
        f"zombies closed {bot.watchdog.closed}, interactions {len(records)}, delivered {len(delivered)}, "
        f"answers {len(answers)}, lost {len(lost)}, answered twice {len(twice)}, "
        f"not delivered (no session) {len(records) - len(delivered)}"
    )
    with capsys.disabled():
        print("\n" + summary)
    assert not lost and not twice, summary
    assert len(answers) == len(delivered), summary
    assert fake.sessions_started - 1 >= 3 and fake.sessions_resumed >= 8, summary
    assert bot.watchdog.closed >= 1, summary
