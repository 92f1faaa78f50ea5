"""`/index status` and `/index add` show a channel's counts only to who may read it (issue 23: 9),
as `/search` searches only such channels."""

from __future__ import annotations

from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.permissions import (
    MANAGE_GUILD,
    OVERWRITE_MEMBER,
    OVERWRITE_ROLE,
    READ_MESSAGE_HISTORY,
    VIEW_CHANNEL,
    overwrite,
)
from tests.support.outcomes import wait_outcome
from tests.support.search import answered, data_dir, index_channel, ready_index, search_bot, stored
from tests.support.shapes import shape_png

STAFF_MANAGER = 555_000_333


async def test_index_status_and_add_leave_out_channels_the_caller_cannot_read(guild: GuildFakeDiscord) -> None:
    fake = guild
    staff = fake.add_role("staff", MANAGE_GUILD)
    hidden = overwrite(fake.guild_id, OVERWRITE_ROLE, deny=VIEW_CHANNEL)
    for_staff = overwrite(staff, OVERWRITE_ROLE, allow=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    for_bot = overwrite(fake.bot_user_id, OVERWRITE_MEMBER, allow=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    private = fake.add_channel("staff-only", [hidden, for_staff, for_bot])
    fake.member_roles[STAFF_MANAGER] = [staff]
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        # The tester manages the server but cannot see the staff channel: no indexing it.
        rec = await fake.send_command("index", {"add": {"channel": private, "backfill": False}})
        kind, reply = await wait_outcome(rec)
        assert kind == "error" and "can read" in reply["content"]
        assert await cog.channels.get(private) is None

        await index_channel(fake, fake.channel_id)
        rec = await fake.send_command("index", {"add": {"channel": private, "backfill": False}}, user_id=STAFF_MANAGER)
        assert "will be indexed" in (await answered(rec))["content"]
        await fake.post(private, images=[(shape_png("red circle", 1), "secret.png")])
        await fake.post(fake.channel_id, images=[(shape_png("blue square", 2), "open.png")])
        await stored(cog, 2)

        rec = await fake.send_command("index", {"status": {}})
        lines = (await answered(rec))["content"].splitlines()
        assert lines == [f"<#{fake.channel_id}>: 1 images · new images only (0 messages scanned)"]
        rec = await fake.send_command("index", {"status": {}}, user_id=STAFF_MANAGER)
        lines = (await answered(rec))["content"].splitlines()
        assert len(lines) == 2 and any(line.startswith(f"<#{private}>: 1 images") for line in lines)
