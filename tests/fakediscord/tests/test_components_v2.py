"""Self-tests of the stand-in's Components V2 rules (tests/fakediscord/components.py, each rule citing
docs: components/reference.mdx) and of Create Message (tests/fakediscord/create_message.py)."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fakediscord import payloads as P
from tests.fakediscord.components import validate_components
from tests.fakediscord.fixtures import serving
from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.permissions import OVERWRITE_MEMBER, SEND_MESSAGES, overwrite

V2 = P.MESSAGE_FLAG_IS_COMPONENTS_V2


def text(content: str = "hello") -> dict[str, Any]:
    return {"type": 10, "content": content}


def gallery(count: int) -> dict[str, Any]:
    return {"type": 12, "items": [{"media": {"url": f"https://cdn.discordapp.com/{i}.png"}} for i in range(count)]}


def container(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": 17, "components": list(children)}


def errors(components: list[dict[str, Any]], flags: int = V2, **fields: Any) -> dict[str, Any]:
    return validate_components({"components": components, "flags": flags, **fields}, [])


def test_a_gallery_inside_a_container_with_the_flag_is_accepted() -> None:
    assert errors([container(text(), gallery(10), {"type": 14}, text())]) == {}


def test_the_new_components_need_the_flag() -> None:
    assert errors([text()], flags=0)["components"]["0"]["type"]["_errors"][0]["code"] == "COMPONENT_LAYOUT_INVALID"
    assert errors([container(text())], flags=0) != {}
    assert errors([{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "a", "label": "a"}]}], 0) == {}


def test_content_and_embeds_are_refused_beside_the_flag() -> None:
    assert "content" in errors([text()], content="hi")
    assert "embeds" in errors([text()], embeds=[{"title": "x"}])
    assert errors([text()], content="", embeds=[]) == {}  # empty ones carry nothing


def test_at_most_40_components_in_all_nested_ones_included() -> None:
    assert errors([container(*[text("x")] * 39)]) == {}  # 1 container + 39 texts
    assert "components" in errors([container(*[text("x")] * 40)])


def test_nesting_follows_each_components_allowed_children() -> None:
    assert errors([container(container(text()))]) != {}  # no container in a container
    thumbnail = {"type": 11, "media": {"url": "https://cdn.discordapp.com/t.png"}}
    assert errors([thumbnail]) != {}  # a thumbnail only as a section's accessory
    section = {"type": 9, "components": [text()], "accessory": thumbnail}
    assert errors([section]) == {}
    assert errors([{**section, "components": [gallery(1)]}]) != {}  # sections hold text displays
    assert errors([{**section, "components": [text()] * 4}]) != {}  # one to three


def test_a_media_gallery_holds_1_to_10_items_with_urls_and_short_alt_text() -> None:
    assert errors([gallery(1)]) == {}
    assert "items" in errors([gallery(0)])["components"]["0"]
    assert "items" in errors([gallery(11)])["components"]["0"]
    no_url = {"type": 12, "items": [{"media": {}}]}
    assert errors([no_url]) != {}
    long_alt = {"type": 12, "items": [{"media": {"url": "https://x/y.png"}, "description": "a" * 1025}]}
    assert errors([long_alt]) != {}


def test_text_displays_hold_4000_characters_in_all() -> None:
    assert errors([text("a" * 2000), text("b" * 2000)]) == {}
    assert "components" in errors([text("a" * 2000), text("b" * 2001)])
    assert errors([{"type": 10, "content": ""}]) != {}


async def _post(fake: GuildFakeDiscord, path: str, body: dict[str, Any], method: str = "POST") -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http,
        http.request(method, f"{fake.api_base}{path}", json=body) as resp,
    ):
        return resp.status, await resp.json()


async def test_create_message_checks_permissions_the_layout_and_the_replied_message() -> None:
    fake = GuildFakeDiscord()
    mute = fake.add_channel("mute", [overwrite(fake.bot_user_id, OVERWRITE_MEMBER, deny=SEND_MESSAGES)])
    async with serving(fake):
        target = fake.message(fake.channel_id, content="original")
        where = f"/channels/{fake.channel_id}/messages"
        reply = {"content": "a reply", "message_reference": {"message_id": target["id"]}, "allowed_mentions": {}}
        status, body = await _post(fake, where, reply)
        assert status == 200 and body["message_reference"]["message_id"] == target["id"]
        assert fake.sent[-1]["request"]["allowed_mentions"] == {}
        status, body = await _post(fake, where, {"flags": V2, "components": [container(text(), gallery(2))]})
        assert status == 200 and body["flags"] == V2
        fake.expect_rejections()
        status, body = await _post(fake, where, {"flags": V2, "content": "x", "components": [text()]})
        assert status == 400 and "content" in body["errors"]
        status, body = await _post(fake, where, {"components": [gallery(3)]})  # no flag
        assert status == 400
        status, body = await _post(fake, where, {"content": "x", "message_reference": {"message_id": "1"}})
        assert status == 400 and "message_reference" in body["errors"]
        status, body = await _post(fake, f"/channels/{mute}/messages", {"content": "x"})
        assert status == 403 and body["code"] == 50013
        assert len(fake.sent) == 2


def test_an_edit_cannot_remove_the_flag_nor_bring_content_back() -> None:
    """docs: "Once a message has been sent with this flag, it can't be removed from that message"."""
    fake = GuildFakeDiscord()
    sent = {
        "flags": V2 | P.MESSAGE_FLAG_EPHEMERAL,
        "content": "",
        "embeds": [],
        "attachments": [],
        "components": [container(text())],
    }

    def edit(body: dict[str, Any]) -> int:
        refused = fake._check_message(body, [], [], allowed_flags=P.EDIT_MESSAGE_FLAGS, editing=sent)
        return 200 if refused is None else refused.status

    assert edit({"components": [container(text("new"), gallery(1))]}) == 200
    assert edit({"flags": 0, "components": [text()]}) == 400
    assert edit({"content": "back"}) == 400  # the flag stays: content is refused beside it
    deferred = {
        "flags": P.MESSAGE_FLAG_EPHEMERAL | P.MESSAGE_FLAG_LOADING,
        "content": "",
        "embeds": [],
        "attachments": [],
        "components": [],
    }
    assert (
        fake._check_message(
            {"flags": V2, "components": [text()]}, [], [], allowed_flags=P.EDIT_MESSAGE_FLAGS, editing=deferred
        )
        is None
    )
