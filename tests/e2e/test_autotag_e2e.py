"""/autotag through the Discord stand-in, with the tiny CLIP: new images of an autotagged channel get
the winning label's emoji or one quiet reply, nothing below the threshold, without permission or past
the rate limit (each counted in /metrics), and the settings go with the channel and the server.

What the bot did is read from the stand-in's records (reactions, messages it created), what it
stored from the database itself.
"""

from __future__ import annotations

import logging

import pytest

from bot.engine import ClipEngine
from tests.fakediscord.channel_writes import ADD_REACTIONS, ChannelWritesFakeDiscord, Reaction
from tests.fakediscord.payloads import MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS
from tests.fakediscord.permissions import OVERWRITE_MEMBER, VIEW_CHANNEL, overwrite
from tests.support.autotag import (
    autotag_add,
    autotag_bot,
    autotag_command,
    settled,
    until,
)
from tests.support.shapes import shape_png

RED, BLUE = "\U0001f534", "\U0001f7e6"  # 🔴 🟦
CAT, DOG = "\U0001f431", "\U0001f436"  # 🐱 🐶


def _emoji_id(fake: ChannelWritesFakeDiscord, name: str) -> int:
    return next(int(e["id"]) for e in fake.emojis.values() if e["name"] == name)


async def test_react_mode_puts_the_winning_labels_emoji_on_each_new_image(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine
) -> None:
    fake = tagging_guild
    tri = _emoji_id(fake, "tri")
    async with autotag_bot(fake, engine) as bot:
        line = await autotag_add(
            fake, fake.channel_id, f"{RED} red circle, {BLUE} blue square, <:tri:{tri}> green triangle, yellow circle"
        )
        assert line.startswith(f"New images in <#{fake.channel_id}> will be tagged")
        assert "Labels without an emoji (yellow circle) get no reaction" in line
        circle = await fake.post(fake.channel_id, images=[(shape_png("red circle", 11), "a.png")])
        triangle = await fake.post(fake.channel_id, images=[(shape_png("green triangle", 12), "b.png")])
        linked = fake.add_external_image(shape_png("blue square", 13), fake.user_posted_url("square.png"))
        embedded = await fake.post(fake.channel_id, embeds=[linked])
        await fake.post(fake.channel_id, content="no image here")
        counts = await settled(bot, 3)
        assert counts["tagged"] == 3 and counts["failed"] == 0
        assert sorted(fake.reactions, key=lambda r: int(r.message_id)) == [
            Reaction(fake.channel_id, circle["id"], RED, fake.bot_user_id),
            Reaction(fake.channel_id, triangle["id"], f"tri:{tri}", fake.bot_user_id),
            Reaction(fake.channel_id, embedded["id"], BLUE, fake.bot_user_id),
        ]
        assert fake.created == [] and fake.forbidden_fetches == []  # the link itself was never fetched

        listed = await autotag_command(fake, "list")
        assert listed == (
            f"<#{fake.channel_id}>: react · at least 50.0% · "
            f"{RED} red circle, {BLUE} blue square, <:tri:{tri}> green triangle, yellow circle"
        )

        # The server emoji deleted behind the bot's back: Discord refuses it (10014), counted as failed.
        fake.expect_rejections()
        fake.emojis.pop(tri)
        await fake.post(fake.channel_id, images=[(shape_png("green triangle", 14), "c.png")])
        counts = await settled(bot, 4)
        assert counts["failed"] == 1 and len(fake.reactions) == 3
        assert fake.rejections[-1].response["code"] == 10014


async def test_an_image_discord_embeds_later_is_tagged_once_and_an_edit_tags_nothing_again(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine
) -> None:
    fake = tagging_guild
    async with autotag_bot(fake, engine) as bot:
        await autotag_add(fake, fake.channel_id, f"{RED} red circle, {BLUE} blue square")
        posted = await fake.post(fake.channel_id, content=f"look {fake.user_posted_url('sq.png')}")
        linked = fake.add_external_image(shape_png("blue square", 16), fake.user_posted_url("sq.png"))
        await fake.unfurl(fake.channel_id, posted["id"], [linked])  # Discord's embed, a moment later
        await settled(bot, 1)
        assert fake.reactions == [Reaction(fake.channel_id, posted["id"], BLUE, fake.bot_user_id)]
        await fake.edit(fake.channel_id, posted["id"], keep_attachments=0)  # edited again: nothing new
        photo = await fake.post(fake.channel_id, images=[(shape_png("red circle", 17), "r.png")])
        counts = await settled(bot, 2)
        assert counts["tagged"] == 2 and sum(counts.values()) == 2
        assert [r.message_id for r in fake.reactions] == [posted["id"], photo["id"]]
        assert fake.forbidden_fetches == []


async def test_a_server_preset_gives_its_labels(tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine) -> None:
    fake = tagging_guild
    async with autotag_bot(fake, engine) as bot:
        await bot.services.presets.save(
            "guild", fake.guild_id, "shapes", [f"{RED} red circle", f"{BLUE} blue square"], by=fake.user_id
        )
        line = await autotag_add(fake, fake.channel_id, "@missing")
        assert line == "⚠️ This server has no preset `@missing` (`/labels list`)."
        line = await autotag_add(fake, fake.channel_id, "Shapes")  # preset names are case-blind
        assert f"when the best of {RED} red circle, {BLUE} blue square (a copy of the server preset `@shapes`)" in line
        posted = await fake.post(fake.channel_id, images=[(shape_png("blue square", 15), "s.png")])
        await settled(bot, 1)
        assert fake.reactions == [Reaction(fake.channel_id, posted["id"], BLUE, fake.bot_user_id)]
        listed = await autotag_command(fake, "list")
        assert listed.endswith("(from `@shapes`)")


async def test_reply_mode_answers_with_one_quiet_line_and_nothing_below_the_threshold(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine
) -> None:
    fake = tagging_guild
    quiet = fake.add_channel("quiet")
    async with autotag_bot(fake, engine) as bot:
        await autotag_add(fake, fake.channel_id, "red circle, blue square", mode="reply")
        posted = await fake.post(fake.channel_id, images=[(shape_png("blue square", 21), "sq.png")])
        await settled(bot, 1)
        (reply,) = fake.created
        assert reply.message["content"].startswith("blue square · ")
        assert str(reply.body["message_reference"]["message_id"]) == posted["id"]
        assert reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}  # pings nobody
        assert reply.body["flags"] & MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS

        # The same image and labels the tiny model does not know: sure, but not that sure.
        image = shape_png("red circle", 5)
        texts, template = bot.service.parse_classify(["cat", "dog"], None)
        best = (await bot.service.classify(image, texts, template, thumbnail=False)).best
        assert best.probability is not None and 0.5 < best.probability < 0.999
        await autotag_add(fake, quiet, f"{CAT} cat, {DOG} dog", min_probability=0.999)
        await fake.post(quiet, images=[(image, "c.png")])
        counts = await settled(bot, 2)
        assert counts["below_threshold"] == 1 and counts["tagged"] == 1
        assert fake.reactions == [] and len(fake.created) == 1

        await autotag_add(fake, quiet, f"{CAT} cat, {DOG} dog", min_probability=0.5)  # replaced
        await fake.post(quiet, images=[(image, "c.png")])
        await settled(bot, 3)
        assert [r.emoji for r in fake.reactions] == [CAT if best.label == "cat" else DOG]


async def test_without_permission_it_says_so_at_add_and_does_nothing(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine
) -> None:
    fake = tagging_guild
    no_reactions = fake.add_channel("no-reactions", [overwrite(fake.bot_user_id, OVERWRITE_MEMBER, deny=ADD_REACTIONS)])
    hidden = fake.add_channel("hidden-from-bot", [overwrite(fake.bot_user_id, OVERWRITE_MEMBER, deny=VIEW_CHANNEL)])
    async with autotag_bot(fake, engine) as bot:
        line = await autotag_add(fake, no_reactions, f"{RED} red circle, {BLUE} blue square")
        missing = "I'm missing Add Reactions there. Give me that, then try again."
        assert line == f"⚠️ I can't autotag <#{no_reactions}> yet: {missing}"
        line = await autotag_add(fake, hidden, f"{RED} red circle, {BLUE} blue square", mode="reply")
        assert line.startswith(f"⚠️ I can't see <#{hidden}>: give me View Channel there")
        line = await autotag_add(fake, fake.channel_id, "red circle, blue square")
        assert line.startswith("⚠️ No emoji in these labels; mode react would do nothing.")
        assert await bot.services.autotag_channels.everywhere() == []
        await fake.post(no_reactions, images=[(shape_png("red circle", 31), "a.png")])

        # Allowed at add, then taken away: the image is left alone (and counted).
        await autotag_add(fake, fake.channel_id, f"{RED} red circle, {BLUE} blue square")
        await fake.set_overwrites(fake.channel_id, [overwrite(fake.bot_user_id, OVERWRITE_MEMBER, deny=ADD_REACTIONS)])
        await fake.post(fake.channel_id, images=[(shape_png("red circle", 32), "b.png")])
        counts = await settled(bot, 1)
        assert counts["no_permission"] == 1 and counts["tagged"] == 0
        assert fake.reactions == [] and fake.created == []


async def test_past_the_rate_limit_images_are_skipped_and_counted(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine
) -> None:
    fake = tagging_guild
    async with autotag_bot(fake, engine, autotag_per_minute=2) as bot:
        await autotag_add(fake, fake.channel_id, f"{RED} red circle, {BLUE} blue square")
        for seed in range(3):
            await fake.post(fake.channel_id, images=[(shape_png("red circle", 40 + seed), f"{seed}.png")])
        await fake.post(
            fake.channel_id, images=[(shape_png("blue square", 50), "x.png"), (shape_png("red circle", 51), "y.png")]
        )
        counts = await settled(bot, 5)
        assert counts == {**counts, "tagged": 2, "skipped_rate_limited": 3}
        assert len(fake.reactions) == 2


async def test_past_the_backlog_bound_new_images_are_skipped_and_counted(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine
) -> None:
    """A bot that cannot keep up holds at most `AUTOTAG_MAX_WAITING` images: one message of five
    arrives at once, three wait and are tagged, two are skipped (and counted); once the backlog
    has drained, the next image is tagged again."""
    fake = tagging_guild
    async with autotag_bot(fake, engine, autotag_max_waiting=3) as bot:
        await autotag_add(fake, fake.channel_id, f"{RED} red circle, {BLUE} blue square")
        burst = [(shape_png("red circle", 60 + seed), f"{seed}.png") for seed in range(5)]
        await fake.post(fake.channel_id, images=burst)
        counts = await settled(bot, 5)
        assert counts == {**counts, "tagged": 3, "skipped_backlog": 2}
        later = await fake.post(fake.channel_id, images=[(shape_png("blue square", 70), "later.png")])
        counts = await settled(bot, 6)
        assert counts == {**counts, "tagged": 4, "skipped_backlog": 2}
        assert Reaction(fake.channel_id, later["id"], BLUE, fake.bot_user_id) in fake.reactions


async def test_settings_go_with_the_channel_and_the_server_live_and_after_downtime(
    tagging_guild: ChannelWritesFakeDiscord, engine: ClipEngine, caplog: pytest.LogCaptureFixture
) -> None:
    fake = tagging_guild
    labels = f"{RED} red circle, {BLUE} blue square"
    doomed, offline, kept = (fake.add_channel(name) for name in ("doomed", "offline", "kept"))
    folder = None
    async with autotag_bot(fake, engine) as bot:
        folder = bot.settings.data_dir
        store = bot.services.autotag_channels
        for channel in (doomed, offline, kept):
            await autotag_add(fake, channel, labels)
        assert {e.channel_id for e in await store.everywhere()} == {doomed, offline, kept}
        await fake.delete_channel(doomed)

        async def doomed_gone() -> bool:
            return await store.get(doomed) is None

        await until(doomed_gone)
    await fake.delete_channel(offline, bot_offline=True)
    with caplog.at_level(logging.INFO, logger="bot.discord.exts.autotag"):
        async with autotag_bot(fake, engine, data_dir=folder) as bot:
            store = bot.services.autotag_channels

            async def only_kept() -> bool:
                return [e.channel_id for e in await store.everywhere()] == [kept]

            await until(only_kept)
            assert any("deleted while I was offline" in r.message for r in caplog.records)
            await fake.remove_bot()  # GUILD_DELETE, live

            async def all_gone() -> bool:
                return await store.everywhere() == []

            await until(all_gone)

    fake.bot_in_guild = True
    async with autotag_bot(fake, engine, data_dir=folder) as bot:
        store = bot.services.autotag_channels
        await autotag_add(fake, kept, labels)
    fake.bot_in_guild = False  # removed while the bot was down: the reconcile purges the server
    async with autotag_bot(fake, engine, data_dir=folder) as bot:
        store = bot.services.autotag_channels

        async def purged() -> bool:
            return await store.everywhere() == []

        await until(purged)
    assert await outcomes_untouched(fake)


async def outcomes_untouched(fake: ChannelWritesFakeDiscord) -> bool:
    """Nothing was posted in any of those channels, so nothing was tagged."""
    return fake.reactions == [] and fake.created == []
