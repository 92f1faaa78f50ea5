"""Sharding (`SHARD_COUNT`, `SHARD_IDS`): the bot identifies with its shard and answers on it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.discord.client import ClipBot, ShardedClipBot
from bot.engine import ClipEngine
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import final_messages, wait_outcome
from tests.support.settings import make_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_bot_identifies_as_its_configured_shard_and_answers(fake: FakeDiscord, engine: ClipEngine) -> None:
    """Shard 1 of 2 in this process (shard 0 would run in another): IDENTIFY carries [1, 2]."""
    async with running_bot(fake, engine=engine, shard_count=2, shard_ids=(1,)) as bot:
        assert isinstance(bot, ShardedClipBot)
        assert bot.shard_count == 2 and sorted(bot.shards) == [1]
        [session] = fake._sessions.values()
        assert session.shard == [1, 2]
        rec = await fake.send_command("similar", {"text": "red circle", "others": "blue square, red circle"})
        kind, message = await wait_outcome(rec)
    assert kind == "answer" and final_messages(rec) == 1
    assert message["embeds"][0]["description"].splitlines()[0].startswith("` 1.` **red circle**")


async def test_without_shard_settings_the_bot_is_not_sharded(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine) as bot:
        assert type(bot) is ClipBot
        [session] = fake._sessions.values()
        assert session.shard is None


def test_shard_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="SHARD_COUNT"):
        make_settings(shard_ids="0")
    with pytest.raises(ValidationError, match="SHARD_IDS"):
        make_settings(shard_count=2, shard_ids="0,2")
    assert make_settings(shard_count=4, shard_ids="2, 3").shard_ids == (2, 3)
    assert make_settings(shard_count=4, shard_ids="").shard_ids is None
