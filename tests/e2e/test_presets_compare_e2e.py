"""Presets (`/labels`, `@name`, `/forget-me`) and `/compare` through the Discord stand-in."""

from __future__ import annotations

import asyncio

import pytest

from bot.engine import ClipEngine
from tests.fakediscord.payloads import MEMBER_PERMISSIONS
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import EPHEMERAL, wait_outcome
from tests.support.shapes import shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _private_line(fake: FakeDiscord, name: str, options: dict, **who: object) -> str:  # type: ignore[type-arg]
    rec = await fake.send_command(name, options, **who)  # type: ignore[arg-type]
    await rec.wait_for(lambda r: bool(r.callbacks))
    callback = rec.callbacks[0][1]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    return callback["data"].get("content") or str(callback["data"].get("embeds"))


async def test_a_saved_preset_is_used_by_name_then_forgotten(fake: FakeDiscord, engine: ClipEngine) -> None:
    user = {"user_id": 50_001, "member_permissions": MEMBER_PERMISSIONS}
    async with running_bot(fake, engine=engine):
        saved = await _private_line(
            fake, "labels", {"save": {"name": "Shapes", "labels": "red circle, blue square, green triangle"}}, **user
        )
        assert saved.startswith("Saved personal preset `@shapes` with 3 labels")
        shown = await _private_line(fake, "labels", {"show": {"name": "@shapes"}}, **user)
        assert "red circle, blue square, green triangle" in shown
        rec = await fake.send_command(
            "classify",
            {"labels": "@shapes, yellow circle"},
            attachments={"image": (shape_png("blue square", 5), "b.png", "image/png")},
            **user,  # type: ignore[arg-type]
        )
        kind, message = await wait_outcome(rec)
        assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: blue square"
        assert message["embeds"][0]["description"].count(" cos ") == 4, "the preset's 3 labels and one more"
        other = await fake.send_command(
            "classify",
            {"labels": "@shapes, cat"},
            attachments={"image": (shape_png("blue square", 5), "b.png", "image/png")},
            user_id=50_002,
            member_permissions=MEMBER_PERMISSIONS,
        )
        kind, message = await wait_outcome(other)
        assert kind == "error" and "no preset named `@shapes`" in message["content"], "personal: nobody else's"
        listed = await _private_line(fake, "labels", {"list": {}}, **user)
        assert "@shapes" in listed
        # Deferred (privately): the image index may have to open first to delete their images too.
        rec = await fake.send_command("forget-me", {}, **user)  # type: ignore[arg-type]
        await rec.wait_for(lambda r: any(body.get("content") for _, body in r.edits), 90)
        callback = rec.callbacks[0][1]
        assert callback["type"] == 5 and callback["data"]["flags"] & EPHEMERAL
        forgotten = next(body["content"] for _, body in rec.edits if body.get("content"))
        assert "Deleted 1 presets, 1 recent label sets" in forgotten
        assert "deleted from the image search index" in forgotten
        assert await bot_presets(fake, 50_001) == []


async def bot_presets(fake: FakeDiscord, user_id: int) -> list[str]:
    listed = await _private_line(fake, "labels", {"list": {}}, user_id=user_id, member_permissions=MEMBER_PERMISSIONS)
    return ["@shapes"] if "@shapes" in listed else []


async def test_server_presets_need_manage_server(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        refused = await _private_line(
            fake,
            "labels",
            {"save": {"name": "team", "labels": "cat, dog", "scope": "server"}},
            user_id=50_010,
            member_permissions=MEMBER_PERMISSIONS,
        )
        assert "Only members with Manage Server" in refused
        saved = await _private_line(
            fake, "labels", {"save": {"name": "team", "labels": "cat, dog", "scope": "server"}}, user_id=50_011
        )
        assert saved.startswith("Saved server preset `@team`")
        used_by_member = await _private_line(
            fake, "labels", {"show": {"name": "team"}}, user_id=50_010, member_permissions=MEMBER_PERMISSIONS
        )
        assert "(server, 2 labels): cat, dog" in used_by_member
        deleted = await _private_line(fake, "labels", {"delete": {"name": "team", "scope": "server"}}, user_id=50_011)
        assert deleted == "Deleted server preset `@team`."


async def test_compare_ranks_the_matching_picture_first(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "compare",
            {},
            attachments={
                "image": (shape_png("green circle", 101), "query.png", "image/png"),
                "other": (shape_png("red square", 102), "square.png", "image/png"),
                "other2": (shape_png("green circle", 103), "circle.png", "image/png"),
                "other3": (shape_png("blue triangle", 104), "triangle.png", "image/png"),
            },
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer"
    embed = message["embeds"][0]
    assert embed["title"] == "Most like \\#1 query.png: \\#3 circle.png"
    assert embed["description"].count("cos ") == 3


async def test_labels_autocomplete_offers_presets_and_recent_sets(fake: FakeDiscord, engine: ClipEngine) -> None:
    user = {"user_id": 50_100, "member_permissions": MEMBER_PERMISSIONS}
    async with running_bot(fake, engine=engine) as bot:
        await _private_line(fake, "labels", {"save": {"name": "animals", "labels": "cat, dog, fox"}}, **user)
        await _private_line(fake, "labels", {"save": {"name": "anime", "labels": "naruto, goku"}}, **user)
        used = await fake.send_command(
            "classify",
            {"labels": "red circle, blue square"},
            attachments={"image": (shape_png("red circle", 1), "r.png", "image/png")},
            **user,  # type: ignore[arg-type]
        )
        await wait_outcome(used)
        for _ in range(50):  # the set is stored just after the answer is sent
            if await bot.presets.recent(50_100, fake.guild_id):
                break
            await asyncio.sleep(0.02)
        typing = await fake.send_command("classify", {"labels": "horse, @ani"}, focused="labels", **user)  # type: ignore[arg-type]
        empty = await fake.send_command("classify", {"labels": ""}, focused="labels", **user)  # type: ignore[arg-type]
        for rec in (typing, empty):
            await rec.wait_for(lambda r: bool(r.callbacks), 5)
            assert rec.ack_latency is not None and rec.ack_latency < 3.0
    choices = typing.callbacks[0][1]["data"]["choices"]
    assert [c["value"] for c in choices] == ["horse, @animals", "horse, @anime"]
    assert choices[0]["name"] == "@animals (yours): cat, dog, fox"
    offered = [c["value"] for c in empty.callbacks[0][1]["data"]["choices"]]
    assert offered[0] == "red circle, blue square", "the recent set first, then presets"
    assert {"@animals", "@anime"} <= set(offered)


async def test_server_defaults_apply_to_classify_and_the_form(fake: FakeDiscord, engine: ClipEngine) -> None:
    member = {"user_id": 50_200, "member_permissions": MEMBER_PERMISSIONS}
    async with running_bot(fake, engine=engine):
        refused = await _private_line(fake, "labels", {"defaults": {"template": "art of the {}"}}, **member)
        assert "Only members with Manage Server" in refused
        await _private_line(
            fake, "labels", {"save": {"name": "shapes", "labels": "red circle, blue square", "scope": "server"}}
        )
        bad = await _private_line(fake, "labels", {"defaults": {"template": "no placeholder"}})
        assert "exactly once" in bad
        shown = await _private_line(fake, "labels", {"defaults": {"template": "art of the {}", "preset": "@shapes"}})
        assert shown == "This server's defaults: template art of the {}; preset `@shapes`."
        rec = await fake.send_command(
            "classify",
            {"labels": "red circle, blue square"},
            attachments={"image": (shape_png("red circle", 8), "r.png", "image/png")},
            **member,  # type: ignore[arg-type]
        )
        kind, message = await wait_outcome(rec)
        assert kind == "answer" and 'template "art of the {}"' in message["embeds"][0]["footer"]["text"]
        posted = fake.channel_message(attachments=[(shape_png("blue square", 9), "b.png", "image/png")])
        menu = await fake.send_command("Classify image", target_message=posted, user_id=50_201)
        await menu.wait_for(lambda r: bool(r.callbacks), 5)
        assert menu.callbacks[0][1]["data"]["components"][0]["component"]["value"] == "@shapes"
        cleared = await _private_line(fake, "labels", {"defaults": {"clear": True}})
        assert cleared == "This server's defaults: template the bot's; preset none."


def _noise_png(seed: int, side: int = 700) -> bytes:
    """A PNG of random pixels: about 1.4 MB, since noise does not compress."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_compare_larger_than_the_download_budget_is_answered_and_gives_it_back(fake: FakeDiscord) -> None:
    """`DOWNLOAD_BUDGET_MB` bounds the bytes all requests hold; one request whose files declare
    more than all of it waits for the whole budget, never for itself, and gives it back."""
    async with running_bot(fake, download_budget_mb=1, request_timeout_s=20) as bot:
        files = {name: (_noise_png(seed), f"{name}.png", "image/png") for seed, name in enumerate(["image", "other"])}
        assert all(len(data) > 1 << 20 for data, _, _ in files.values())
        rec = await fake.send_command("compare", {}, attachments=files)
        kind, message = await wait_outcome(rec, timeout=40)
        await asyncio.sleep(0.1)
        budget = bot.download_budget
        assert (budget.capacity, budget.available) == (1 << 20, 1 << 20), "given back"
    assert kind == "answer", message
