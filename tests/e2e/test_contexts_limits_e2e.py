"""Every place a user can be gets a correct answer, and the worst inputs the options
allow get replies Discord accepts (the stand-in checks every payload against the
documented limits and fails the test on any refusal)."""

from __future__ import annotations

import pytest

from bot.engine import ClipEngine
from tests.fakediscord.payloads import MEMBER_PERMISSIONS
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import EPHEMERAL, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)
CONTEXTS = ["guild", "dm", "group_dm", "user_install_guild", "user_dm"]
#: Markdown, mention, emoji and bidi characters: what escaping can double.
HOSTILE = "_*~|>@#<:`\u202e\u2066"


@pytest.mark.parametrize("context", CONTEXTS)
async def test_each_context_gets_a_correct_answer(fake: FakeDiscord, engine: ClipEngine, context: str) -> None:
    # Global commands: the only ones offered outside a guild.
    async with running_bot(fake, engine=engine, discord_guild_id=None):
        rec = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("yellow triangle", 7), "t.png", "image/png")},
            context=context,
        )
        kind, message = await wait_outcome(rec)
        assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: yellow triangle", context
        similar = await fake.send_command(
            "similar", {"text": "red circle", "others": "blue square, red circle"}, context=context
        )
        kind, message = await wait_outcome(similar)
        assert kind == "answer" and "**red circle** · cos 1.0000" in message["embeds"][0]["description"]


async def test_rate_limit_applies_in_dms_and_to_managers_where_the_bot_is_not(fake: FakeDiscord) -> None:
    async with running_bot(fake, discord_guild_id=None, user_cooldown_s=30, user_burst=1):
        first = await fake.send_command("similar", {"text": "a", "others": "b"}, context="dm", user_id=60_001)
        assert (await wait_outcome(first))[0] == "answer"
        again = await fake.send_command("similar", {"text": "a", "others": "c"}, context="dm", user_id=60_001)
        kind, message = await wait_outcome(again)
        assert kind == "error" and "Slow down" in message["content"], "no server, no exemption"
        # A user install in a server the bot is not in: a manager there is limited like anyone.
        manager = [
            await fake.send_command(
                "similar", {"text": "a", "others": "b"}, context="user_install_guild", user_id=60_002
            )
            for _ in range(2)
        ]
        assert [(await wait_outcome(rec))[0] for rec in manager] == ["answer", "error"]
        member = [
            await fake.send_command(
                "similar",
                {"text": "a", "others": "b"},
                context="user_install_guild",
                user_id=60_003,
                member_permissions=MEMBER_PERMISSIONS,
            )
            for _ in range(2)
        ]
        assert [(await wait_outcome(rec))[0] for rec in member] == ["answer", "error"]


async def test_server_presets_are_refused_in_a_dm_with_one_line(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine, discord_guild_id=None):
        rec = await fake.send_command(
            "labels", {"save": {"name": "x", "labels": "a, b", "scope": "server"}}, context="dm"
        )
        await rec.wait_for(lambda r: bool(r.callbacks))
    data = rec.callbacks[0][1]["data"]
    assert data["flags"] & EPHEMERAL and "exist only in a server" in data["content"]


def _labels_of(total_chars: int, count: int) -> str:
    """`count` distinct labels, as long as the option allows, full of hostile characters."""
    each = (total_chars - 2 * (count - 1)) // count
    labels = []
    for i in range(count):
        head = f"label {i} "
        body = (HOSTILE * each)[: each - len(head)]
        labels.append(head + body)
    text = ", ".join(labels)
    assert len(text) <= total_chars
    return text


WORST_CLASSIFY = {
    "25 labels filling the option, longest template": (
        _labels_of(4000, 25),
        "a photo of " + "_*@" * 95 + " {}",
    ),
    "3 labels of about 1000 characters": (_labels_of(3010, 3), None),
    "25 labels of underscores and @": (", ".join(f"{i} " + "_@" * 77 for i in range(25)), "none"),
}


@pytest.mark.parametrize("case", list(WORST_CLASSIFY))
async def test_worst_classify_inputs_get_a_reply_discord_accepts(
    fake: FakeDiscord, engine: ClipEngine, case: str
) -> None:
    labels, template = WORST_CLASSIFY[case]
    options = {"labels": labels} | ({"template": template[:300]} if template else {})
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "classify", options, attachments={"image": (shape_png("red circle", 3), "x.png", "image/png")}
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer", message
    embed = message["embeds"][0]
    assert embed["title"].startswith("Looks like: ")
    assert "@everyone" not in str(embed) and "\u202e" not in str(embed)
    # The stand-in refused nothing (its fixture fails the test at teardown otherwise).
    assert not fake.rejections


async def test_worst_similar_inputs_get_a_reply_discord_accepts(fake: FakeDiscord, engine: ClipEngine) -> None:
    phrase = ("@everyone " + HOSTILE * 100)[:1000]
    async with running_bot(fake, engine=engine):
        long_phrase = await fake.send_command("similar", {"text": phrase, "others": "cat, dog"})
        many = await fake.send_command("similar", {"text": "cat", "others": _labels_of(4000, 25)})
        pair = await fake.send_command("similar", {"text": phrase, "others": phrase[::-1][:1000]})
        for rec in (long_phrase, many, pair):
            kind, message = await wait_outcome(rec)
            assert kind == "answer", message
    assert not fake.rejections
