"""Threads and forum posts in the image index, through the stand-in, with the tiny CLIP and Milvus Lite.

Who finds a thread's image follows Discord's thread permissions (topics/threads.mdx):
the parent channel's, and for a private thread membership or Manage Threads.
"""

from __future__ import annotations

from tests.fakediscord.permissions import OVERWRITE_MEMBER, VIEW_CHANNEL, overwrite
from tests.fakediscord.threads import MANAGE_THREADS, ThreadGuildFakeDiscord
from tests.support.search import answered, data_dir, index_channel, ready_index, search_bot, stored, until
from tests.support.threads import found, image_of, similar, thread_requests

INSIDER = 555_100_001  # a member of the private thread
OUTSIDER = 555_100_002  # not in it, and cannot view the staff channel
MODERATOR = 555_100_003  # Manage Threads, not in the private thread


async def test_a_threads_image_is_found_only_by_who_can_see_the_thread(guild: ThreadGuildFakeDiscord) -> None:
    fake = guild
    fake.member_roles[MODERATOR] = [fake.add_role("moderator", MANAGE_THREADS)]
    staff = fake.add_channel("staff", [overwrite(OUTSIDER, OVERWRITE_MEMBER, deny=VIEW_CHANNEL)])
    forum = fake.add_forum("gallery")
    media = fake.add_forum("clips", media=True)
    news = fake.add_announcement_channel("news")
    news_thread = fake.add_thread(news, "launch")  # an announcement thread
    public = fake.add_thread(fake.channel_id, "chat")
    private = fake.add_thread(fake.channel_id, "secret", private=True, members=[INSIDER, fake.bot_user_id])
    staff_thread = fake.add_thread(staff, "staff talk")
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        for channel in (fake.channel_id, staff, forum, media, news):
            assert "will be indexed" in (await index_channel(fake, channel))["content"]
        post = await fake.create_thread(forum, "my drawing")  # a forum post, started now
        media_post = await fake.create_thread(media, "my clip")
        shown = {
            "public": await fake.post(public, images=image_of("blue square", 11)),
            "private": await fake.post(private, images=image_of("red circle", 12)),
            "staff": await fake.post(staff_thread, images=image_of("green triangle", 13)),
            "post": await fake.post(post, images=image_of("yellow square", 14)),
            "media": await fake.post(media_post, images=image_of("green circle", 15)),
            "news": await fake.post(news_thread, images=image_of("yellow triangle", 16)),
        }
        for thread in (public, private, staff_thread, post, media_post, news_thread):
            await stored(cog, 1, channel_id=thread)  # stored under the thread's id

        ids = {name: message["id"] for name, message in shown.items()}
        insider = await found(fake, INSIDER, "red circle")
        assert insider[0] == ids["private"] and set(insider) == set(ids.values())
        outsider = await found(fake, OUTSIDER, "red circle")
        # Not the private thread, not the staff channel's thread.
        assert set(outsider) == {ids["public"], ids["post"], ids["media"], ids["news"]}
        assert (await found(fake, MODERATOR, "red circle"))[0] == ids["private"]  # Manage Threads sees it
        assert (await found(fake, OUTSIDER, "yellow square"))[0] == ids["post"]  # the forum post's image

        # "Find similar images" on a thread's message: the same rule.
        assert ids["private"] in await similar(fake, INSIDER, shown["public"])
        outsider_similar = await similar(fake, OUTSIDER, shown["public"])
        assert ids["post"] in outsider_similar and ids["private"] not in outsider_similar

        await fake.remove_thread_member(private, INSIDER)  # membership is checked at each search
        assert ids["private"] not in await found(fake, INSIDER, "red circle")

        await fake.delete_thread(private)
        await stored(cog, 0, channel_id=private)
        await fake.delete(public, ids["public"])
        await stored(cog, 0, channel_id=public)
        await fake.delete_channel(staff)  # a parent deleted: its threads' images go
        await stored(cog, 0, channel_id=staff_thread)
        rec = await fake.send_command("index", {"remove": {"channel": forum}})
        assert "no longer indexed" in (await answered(rec))["content"]
        await stored(cog, 0, channel_id=post)
        await fake.bulk_delete(news_thread, [ids["news"]])
        await stored(cog, 0, channel_id=news_thread)
        await stored(cog, 1)  # the media post's
        # The threads of the channels still indexed are still known.
        remaining = {entry.thread_id for entry in await cog.places.store.everywhere()}
        assert remaining == {public, media_post, news_thread}


async def test_backfill_walks_active_and_archived_threads_resumes_and_purges_what_was_deleted_offline(
    guild: ThreadGuildFakeDiscord,
) -> None:
    fake = guild
    forum = fake.add_forum("art")
    active = fake.add_thread(fake.channel_id, "active")
    old = fake.add_thread(fake.channel_id, "old", archived=True)
    old_private = fake.add_thread(
        fake.channel_id, "old private", private=True, members=[fake.bot_user_id], archived=True
    )
    not_mine = fake.add_thread(fake.channel_id, "not mine", private=True, archived=True)
    old_post = fake.add_thread(forum, "old post", archived=True)
    fake.message(fake.channel_id, images=image_of("blue circle", 20))
    images = {
        active: fake.message(active, images=image_of("green square", 21)),
        old_private: fake.message(old_private, images=image_of("red triangle", 22)),
        not_mine: fake.message(not_mine, images=image_of("yellow circle", 23)),
        old_post: fake.message(old_post, images=image_of("blue triangle", 24)),
    }
    for i in range(150):  # the archived thread's history: two pages, images on both
        if i % 30 == 0:
            fake.message(old, images=image_of("green circle" if i else "red circle", 100 + i))
        else:
            fake.message(old, content=f"chat {i}")
    fake.cdn_delay = 0.3  # each image takes a while: the restart lands inside the long thread
    folder = data_dir()
    async with search_bot(fake, folder, backfill_concurrency=1) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id, backfill=True)
        await index_channel(fake, forum, backfill=True)

        async def first_page_of_old_done() -> bool:
            entry = await cog.places.store.get(old)
            return entry is not None and entry.scanned >= 100

        await until(first_page_of_old_done, 120)
    fake.cdn_delay = 0.0
    before_restart = len(thread_requests(fake, f"/channels/{old}/messages"))
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)

        async def all_done() -> bool:
            entries = [await cog.channels.get(c) for c in (fake.channel_id, forum)]
            return all(e is not None and e.backfill == "done" for e in entries)

        await until(all_done, 120)
        resumed = thread_requests(fake, f"/channels/{old}/messages")[before_restart]
        assert "before" in resumed.query  # continued from the thread's checkpoint
        for thread in (active, old_private, old_post):
            await stored(cog, 1, channel_id=thread)
        await stored(cog, 5, channel_id=old)
        await stored(cog, 0, channel_id=not_mine)  # a private thread the bot is not in is not its to read
        # Without Manage Threads the bot lists only the private archived threads it joined.
        assert thread_requests(fake, f"/channels/{fake.channel_id}/users/@me/threads/archived/private")
        assert not thread_requests(fake, f"/channels/{fake.channel_id}/threads/archived/private")
        hits = await found(fake, fake.user_id, "blue triangle", results=1)
        assert hits == [images[old_post]["id"]]  # an archived forum post's image, shown with a fresh link

    await fake.delete_thread(old, bot_offline=True)
    fake.member_roles[fake.bot_user_id] = [fake.add_role("bot moderator", MANAGE_THREADS)]
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)
        await stored(cog, 0, channel_id=old)  # the reconcile after downtime asked Discord
        await stored(cog, 1, channel_id=old_post)
        assert await cog.places.store.get(old) is None
        # With Manage Threads, a backfill lists every private archived thread, and can read them.
        rec = await fake.send_command("index", {"rebuild": {}})
        assert "Re-indexing 2 channels" in (await answered(rec))["content"]
        await until(all_done, 120)
        await stored(cog, 1, channel_id=not_mine)
        assert thread_requests(fake, f"/channels/{fake.channel_id}/threads/archived/private")
