"""/index and /search through the Discord stand-in, with the tiny CLIP and the real Milvus Lite.

Every assertion about what is stored queries the vector database itself.
"""

from __future__ import annotations

import re

from tests.fakediscord import payloads as P
from tests.fakediscord.messages import GuildFakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import wait_outcome
from tests.support.search import (
    add_staff_only_channel,
    answered,
    count,
    data_dir,
    gallery,
    index_channel,
    ready_index,
    result_channels,
    result_links,
    search_bot,
    stored,
    until,
)
from tests.support.shapes import shape_png

TARGET = "red circle"
DISTRACTORS = ["blue square", "green triangle", "yellow square", "blue circle", "green square"]
MEMBER = 555_000_111
OTHER = 555_000_222


async def test_new_images_are_indexed_and_found_by_words_by_image_and_by_message(guild: GuildFakeDiscord) -> None:
    fake = guild
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        reply = await index_channel(fake, fake.channel_id)
        assert "will be indexed" in reply["content"]
        posted = [
            await fake.post(fake.channel_id, images=[(shape_png(label, 900 + i), f"{i}.png")])
            for i, label in enumerate(DISTRACTORS)
        ]
        target = await fake.post(fake.channel_id, images=[(shape_png(TARGET, 4242), "target.png")])
        await fake.post(fake.channel_id, content="no image here")
        await stored(cog, len(posted) + 1)
        assert await cog.store.keys(int(target["id"])) == {f"{target['id']}:a{target['attachments'][0]['id']}"}

        rec = await fake.send_command("search", {"text": TARGET, "results": 3})
        kind, answer = await wait_outcome(rec)
        assert kind == "answer"
        assert (
            answer["flags"] & P.MESSAGE_FLAG_IS_COMPONENTS_V2 and "content" not in answer and not answer.get("embeds")
        )
        assert answer["allowed_mentions"]["parse"] == []  # the <@author> of each result pings nobody
        assert len(result_links(answer)) == 3 and len(gallery(answer)) == 3
        assert result_links(answer)[0].endswith(f"/{fake.channel_id}/{target['id']}")
        assert result_channels(answer) == [fake.channel_id] * 3
        assert gallery(answer)[0]["media"]["url"].startswith(fake.base_url)  # a fresh link from the message
        original = rec.messages[rec.original_id]  # what the stand-in accepted and shows
        assert original["flags"] & P.MESSAGE_FLAG_IS_COMPONENTS_V2 and original["flags"] & P.MESSAGE_FLAG_EPHEMERAL

        rec = await fake.send_command("search", attachments={"image": (shape_png(TARGET, 777), "q.png", "image/png")})
        kind, answer = await wait_outcome(rec)
        assert kind == "answer" and result_links(answer)[0].endswith(f"/{target['id']}")

        another = fake.message(fake.channel_id, images=[(shape_png(TARGET, 31337), "again.png")])
        rec = await fake.send_command("Find similar images", target_message=another)
        kind, answer = await wait_outcome(rec)
        assert kind == "answer" and result_links(answer)[0].endswith(f"/{target['id']}")


async def test_backfill_shows_progress_and_resumes_after_a_restart(guild: GuildFakeDiscord) -> None:
    fake = guild
    images = {}
    for i in range(230):  # three pages of 100; images spread over all of them
        if i % 25 == 0:
            label = TARGET if i == 100 else DISTRACTORS[i // 25 % len(DISTRACTORS)]
            msg = fake.message(fake.channel_id, images=[(shape_png(label, 2000 + i), f"{i}.png")])
            images[msg["id"]] = label
        else:
            fake.message(fake.channel_id, content=f"chat {i}")
    fake.cdn_delay = 0.4  # each image takes a while to fetch: the restart lands mid-backfill
    folder = data_dir()
    async with search_bot(fake, folder, backfill_progress_every_s=0.5, backfill_concurrency=1) as bot:
        cog = await ready_index(bot)
        rec = await fake.send_command("index", {"add": {"channel": fake.channel_id}})
        progress = re.compile(r"Indexing <#\d+>: (\d+) images indexed of (\d+) messages scanned · [\d.]+ images/s")
        await rec.wait_for(lambda r: any(progress.search(b.get("content") or "") for _, b in r.edits), 90)

        async def first_page_done() -> bool:
            entry = await cog.channels.get(fake.channel_id)
            return entry is not None and entry.scanned >= 100

        await until(first_page_done, 120)
    fake.cdn_delay = 0.0
    history_calls = len([r for r in fake.requests if r.path.endswith("/messages")])
    async with search_bot(fake, folder) as bot:
        cog = await ready_index(bot)

        async def finished() -> bool:
            entry = await cog.channels.get(fake.channel_id)
            return entry is not None and entry.backfill == "done"

        await until(finished, 120)
        entry = await cog.channels.get(fake.channel_id)
        assert entry is not None and entry.scanned == 230
        assert await count(cog) == len(images)
        resumed = [r for r in fake.requests if r.path.endswith("/messages")][history_calls]
        assert "before" in resumed.query  # continued from the checkpoint, not from the newest message
        rec = await fake.send_command("search", {"text": TARGET, "results": 1})
        kind, answer = await wait_outcome(rec)
        assert kind == "answer" and images[result_links(answer)[0].rsplit("/", 1)[1]] == TARGET


async def test_every_kind_of_deletion_removes_the_entries(guild: GuildFakeDiscord) -> None:
    fake = guild
    second = fake.add_channel("photos")
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        await index_channel(fake, second)
        alone = await fake.post(fake.channel_id, images=[(shape_png("red square", 1), "a.png")])
        bulk = [await fake.post(fake.channel_id, images=[(shape_png("blue circle", s), "b.png")]) for s in (2, 3)]
        pair = await fake.post(
            fake.channel_id, images=[(shape_png("green circle", 4), "c.png"), (shape_png("yellow circle", 5), "d.png")]
        )
        mine = await fake.post(fake.channel_id, images=[(shape_png("red triangle", 6), "e.png")], author_id=OTHER)
        elsewhere = await fake.post(second, images=[(shape_png("blue square", 7), "f.png")])
        await stored(cog, 7)

        await fake.delete(fake.channel_id, alone["id"])
        await stored(cog, 6)
        assert await cog.store.keys(int(alone["id"])) == set()

        await fake.bulk_delete(fake.channel_id, [m["id"] for m in bulk])
        await stored(cog, 4)

        await fake.edit(fake.channel_id, pair["id"], keep_attachments=1)
        await stored(cog, 3)
        assert await cog.store.keys(int(pair["id"])) == {f"{pair['id']}:a{pair['attachments'][0]['id']}"}

        rec = await fake.send_command("index", {"forget-me": {}}, user_id=OTHER)
        assert "deleted" in (await answered(rec))["content"]
        assert await cog.store.keys(int(mine["id"])) == set()
        assert await count(cog) == 2

        await fake.delete_channel(second)
        await stored(cog, 0, channel_id=second)
        assert await cog.store.keys(int(elsewhere["id"])) == set()

        rec = await fake.send_command("index", {"remove": {"channel": fake.channel_id}})
        assert "no longer indexed" in (await answered(rec))["content"]
        assert await count(cog) == 0

        await index_channel(fake, fake.channel_id)
        await fake.post(fake.channel_id, images=[(shape_png("red circle", 8), "g.png")])
        await stored(cog, 1)
        await fake.remove_bot()
        await stored(cog, 0)
        assert await cog.channels.guild(fake.guild_id) == []


async def test_results_only_come_from_channels_the_member_can_view_now(guild: GuildFakeDiscord) -> None:
    fake = guild
    staff, private = add_staff_only_channel(fake)
    fake.member_roles[MEMBER] = [staff]
    fake.member_roles[fake.user_id] = [*fake.member_roles[fake.user_id], staff]  # who indexes it can read it
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        await index_channel(fake, private)
        secret = await fake.post(private, images=[(shape_png(TARGET, 4243), "secret.png")])
        for i, label in enumerate(DISTRACTORS):
            await fake.post(fake.channel_id, images=[(shape_png(label, 50 + i), f"{i}.png")])
        await stored(cog, len(DISTRACTORS) + 1)

        rec = await fake.send_command("search", {"text": TARGET, "results": 10}, user_id=OTHER)
        kind, answer = await wait_outcome(rec)
        assert kind == "answer" and private not in result_channels(answer)
        assert len(result_links(answer)) == len(gallery(answer)) == len(DISTRACTORS)

        rec = await fake.send_command("search", {"text": TARGET, "results": 10}, user_id=MEMBER)
        kind, answer = await wait_outcome(rec)
        assert result_channels(answer)[0] == private and result_links(answer)[0].endswith(secret["id"])

        without_staff = [o for o in fake.channels[private]["permission_overwrites"] if int(o["id"]) != staff]
        await fake.set_overwrites(private, without_staff)  # staff lose the channel, right now
        await until(lambda: len(bot.get_channel(private).overwrites) == 2)  # the bot saw CHANNEL_UPDATE
        rec = await fake.send_command("search", {"text": TARGET, "results": 10}, user_id=MEMBER)
        kind, answer = await wait_outcome(rec)
        assert kind == "answer" and private not in result_channels(answer)


async def test_without_the_intent_or_an_index_the_answers_say_why(guild: GuildFakeDiscord) -> None:
    fake = guild
    async with running_bot(fake, wait_model=False, data_dir=data_dir()) as bot:  # MESSAGE_CONTENT_INTENT off
        await ready_index(bot)
        rec = await fake.send_command("search", {"text": TARGET})
        await rec.wait_for(lambda r: any(body.get("content") for _, body in r.edits), 30)
        assert rec.edits[-1][1]["content"] == "No images found (no indexed channel you can see)."

        rec = await fake.send_command("search", {"text": TARGET}, attachments={"image": (b"x", "a.png", "image/png")})
        kind, answer = await wait_outcome(rec)
        assert kind == "error" and "either `text`" in answer["content"]

        rec = await fake.send_command("index", {"add": {"channel": fake.channel_id}}, user_id=OTHER)
        kind, answer = await wait_outcome(rec)
        assert kind == "error" and "Manage Server" in answer["content"]

        reply = await index_channel(fake, fake.channel_id)
        assert "Message Content intent is off" in reply["content"]
