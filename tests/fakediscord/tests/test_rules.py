"""Self-tests of the stand-in's Discord rules, one test per rule (issue 10).

Each rule is driven the way the real client would drive it (a small discord.py bot
defined here, not the project's), or with raw HTTP where discord.py would never send
such a request. The docs page behind each rule is cited where the stand-in enforces it
(tests/fakediscord/server.py, payloads.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord
import pytest
from discord import app_commands

from bot.errors import ConfigError
from tests.fakediscord import FakeDiscord, InteractionRecord, running_client
from tests.fakediscord import payloads as P
from tests.fakediscord.fixtures import serving
from tests.fakediscord.server import DEFAULT_OTHER_GUILD_ID
from tests.support.live_bot import running_bot
from tests.support.paths import REPO

pytestmark = pytest.mark.asyncio(loop_scope="session")

Handler = Callable[[discord.Interaction], Awaitable[None]]
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After")


class RulesBot(discord.Client):
    """Global commands whose body is the test's ``handler``; errors are kept, not raised."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.handler: Handler | None = None
        self.seen: list[discord.Interaction] = []
        self.files: list[discord.Attachment] = []
        self.errors: list[Exception] = []
        self.values: list[dict[str, Any]] = []

        @self.tree.command(description="Runs the test's handler; offered everywhere")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
        async def anywhere(interaction: discord.Interaction, file: discord.Attachment | None = None) -> None:
            if file is not None:
                self.files.append(file)
            await self._run(interaction)

        @self.tree.command(description="Runs the test's handler; Discord's default contexts")
        async def plain(interaction: discord.Interaction) -> None:
            await self._run(interaction)

        @self.tree.command(description="Runs the test's handler; guilds only")
        @app_commands.allowed_contexts(guilds=True)
        async def guild_only(interaction: discord.Interaction) -> None:
            await self._run(interaction)

        @self.tree.command(description="Options the client checks before sending")
        @app_commands.choices(
            pick=[app_commands.Choice(name="Alpha", value="a"), app_commands.Choice(name="Beta", value="b")]
        )
        async def opts(
            interaction: discord.Interaction,
            text: app_commands.Range[str, 2, 5],
            count: app_commands.Range[int, 1, 10],
            pick: app_commands.Choice[str],
            ratio: app_commands.Range[float, 0.0, 1.0] | None = None,
            loud: bool | None = None,
        ) -> None:
            self.seen.append(interaction)
            self.values.append({"text": text, "count": count, "pick": pick.value, "ratio": ratio, "loud": loud})
            await interaction.response.send_message("ok", ephemeral=True)

        self.choices: list[app_commands.Choice[str]] = []

        @self.tree.command(description="An option with autocomplete; the test sets the choices")
        async def suggest(interaction: discord.Interaction, query: str, other: str | None = None) -> None:
            await interaction.response.send_message("ok", ephemeral=True)

        @suggest.autocomplete("query")
        async def suggest_query(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            self.seen.append(interaction)
            return self.choices

    async def _run(self, interaction: discord.Interaction) -> None:
        self.seen.append(interaction)
        if self.handler is None:
            return  # not acknowledged: the test answers it over raw HTTP
        try:
            await self.handler(interaction)
        except Exception as exc:  # kept for the test to assert on
            self.errors.append(exc)

    async def setup_hook(self) -> None:
        await self.tree.sync()  # global: integration_types / contexts apply


@contextlib.asynccontextmanager
async def rules_bot(fake: FakeDiscord) -> AsyncIterator[RulesBot]:
    bot = RulesBot()
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        yield bot


async def until_quiet(rec: InteractionRecord, bot: RulesBot, count: int = 1) -> None:
    """Wait until the handler ran ``count`` times and the bot stopped sending for 0.2 s."""
    await rec.wait_for(lambda r: len(bot.seen) >= count, timeout=5)
    last = -1
    while True:
        n = len(rec.callbacks) + len(rec.followups) + len(rec.edits) + len(rec.deletes) + len(bot.errors)
        if n == last:
            return
        last = n
        await asyncio.sleep(0.2)


def webhook_url(fake: FakeDiscord, rec: InteractionRecord, tail: str = "") -> str:
    return f"{fake.api_base}/webhooks/{fake.application_id}/{rec.token}{tail}"


def callback_url(fake: FakeDiscord, rec: InteractionRecord) -> str:
    return f"{fake.api_base}/interactions/{rec.id}/{rec.token}/callback"


@contextlib.asynccontextmanager
async def deferred(fake: FakeDiscord) -> AsyncIterator[tuple[InteractionRecord, aiohttp.ClientSession]]:
    """An interaction the bot deferred and edited once, and an HTTP session for raw edits."""
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="ready")

        bot.handler = handler
        rec = await fake.send_command("anywhere")
        await rec.wait_for(lambda r: len(r.edits) == 1, timeout=5)
        async with aiohttp.ClientSession() as http:
            yield rec, http


async def patch(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.patch(url, json=body) as resp:
        return resp.status, await resp.json()


def error_paths(errors: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the leaves that carry ``_errors`` in Discord's nested error object."""
    out: set[str] = set()
    for key, value in errors.items():
        if key == "_errors":
            out.add(prefix.rstrip("."))
        elif isinstance(value, dict):
            out |= error_paths(value, f"{prefix}{key}.")
    return out


# --- 1. interaction contexts ----------------------------------------------------------


async def test_guild_interaction_has_the_fields_discord_sends(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.handler = lambda i: i.response.send_message("hi")
        rec = await fake.send_command("anywhere")
        await until_quiet(rec, bot)
    p = rec.payload
    assert p["version"] == 1 and p["type"] == 2 and p["application_id"] == str(fake.application_id)
    assert p["context"] == 0 and p["authorizing_integration_owners"] == {"0": str(fake.guild_id)}
    assert p["guild_id"] == str(fake.guild_id) and p["guild_locale"] and p["locale"] == "en-US"
    assert p["entitlements"] == [] and p["attachment_size_limit"] > 0 and p["app_permissions"]
    assert p["channel"]["type"] == 0 and "user" not in p
    assert {"user", "roles", "permissions", "flags", "joined_at"} <= set(p["member"])
    (interaction,) = bot.seen
    assert isinstance(interaction.user, discord.Member) and interaction.context.guild
    assert interaction.is_guild_integration() and not interaction.is_user_integration()


async def test_bot_dm_interaction_has_a_user_and_no_guild(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.handler = lambda i: i.response.send_message("hi")
        rec = await fake.send_command("anywhere", context="dm")
        await until_quiet(rec, bot)
    p = rec.payload
    assert p["context"] == 1 and p["channel"]["type"] == 1
    assert "member" not in p and "guild_id" not in p and "guild_locale" not in p
    assert p["user"]["id"] == str(fake.user_id)
    # Both installs are allowed for /anywhere: "0" is "0" in the bot's DM, "1" the user.
    assert p["authorizing_integration_owners"] == {"0": "0", "1": str(fake.user_id)}
    assert p["app_permissions"] == P.BOT_DM_APP_PERMISSIONS
    (interaction,) = bot.seen
    assert isinstance(interaction.channel, discord.DMChannel) and interaction.guild is None
    assert type(interaction.user) is discord.User and interaction.context.dm_channel
    assert rec.final is not None and rec.final["content"] == "hi"


async def test_group_dm_interaction_is_a_private_channel_through_the_user_install(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.handler = lambda i: i.response.send_message("hi")
        rec = await fake.send_command("anywhere", context="group_dm")
        await until_quiet(rec, bot)
    p = rec.payload
    assert p["context"] == 2 and p["channel"]["type"] == 3 and len(p["channel"]["recipients"]) == 3
    assert p["authorizing_integration_owners"] == {"1": str(fake.user_id)}
    assert "member" not in p and "guild_id" not in p and p["user"]["id"] == str(fake.user_id)
    assert p["app_permissions"] == P.PRIVATE_APP_PERMISSIONS
    (interaction,) = bot.seen
    assert isinstance(interaction.channel, discord.GroupChannel) and interaction.context.private_channel
    assert interaction.is_user_integration() and not interaction.is_guild_integration()


async def test_dm_between_users_is_a_private_channel_of_type_1(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.handler = lambda i: i.response.send_message("hi")
        rec = await fake.send_command("anywhere", context="user_dm")
        await until_quiet(rec, bot)
    p = rec.payload
    assert p["context"] == 2 and p["channel"]["type"] == 1
    assert [u["id"] for u in p["channel"]["recipients"]] != [str(fake.bot_user_id)], "not the bot's DM"
    assert p["authorizing_integration_owners"] == {"1": str(fake.user_id)} and "member" not in p
    (interaction,) = bot.seen
    assert isinstance(interaction.channel, discord.DMChannel) and interaction.context.private_channel


async def test_user_install_in_a_guild_without_the_bot(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.handler = lambda i: i.response.send_message("hi")
        rec = await fake.send_command("anywhere", context="user_install_guild")
        await until_quiet(rec, bot)
    p = rec.payload
    assert p["guild_id"] == str(DEFAULT_OTHER_GUILD_ID) and p["context"] == 0
    assert p["authorizing_integration_owners"] == {"1": str(fake.user_id)}
    assert "member" in p and "user" not in p
    (interaction,) = bot.seen
    assert interaction.guild_id == DEFAULT_OTHER_GUILD_ID
    assert bot.get_guild(DEFAULT_OTHER_GUILD_ID) is None, "no GUILD_CREATE for a guild the bot is not in"
    assert interaction.is_user_integration() and not interaction.is_guild_integration()


async def test_contexts_a_command_is_not_offered_in_are_refused(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.handler = lambda i: i.response.send_message("hi")
        synced = {c["name"]: c for c in fake.command_syncs[0].commands}
        assert synced["anywhere"]["integration_types"] == [0, 1] and synced["anywhere"]["contexts"] == [0, 1, 2]
        assert synced["plain"].get("integration_types") is None and synced["plain"].get("contexts") is None
        # Absent fields: guild install only, every context; PRIVATE_CHANNEL needs the user install.
        for context in ("guild", "dm"):
            await fake.send_command("plain", context=context)
        for context in ("group_dm", "user_dm", "user_install_guild"):
            with pytest.raises(ValueError, match="not offered"):
                await fake.send_command("plain", context=context)
        with pytest.raises(ValueError, match="not offered"):
            await fake.send_command("guild_only", context="dm")
        # A guild-scoped command exists only in its guild.
        await bot.tree.sync(guild=discord.Object(fake.guild_id))
        fake.command_syncs.clear()
        with pytest.raises(ValueError, match="no guild"):
            await fake.send_command("opts", {}, context="dm", guild_id=fake.guild_id)
        n_sent = len(fake.interactions)
    assert n_sent == 2, "refused contexts dispatched nothing"


async def test_guild_commands_are_only_offered_in_their_guild(fake: FakeDiscord) -> None:
    bot = RulesBot()
    bot.tree.copy_global_to(guild=discord.Object(fake.guild_id))
    bot.tree.clear_commands(guild=None)

    async def guild_sync() -> None:
        await bot.tree.sync(guild=discord.Object(fake.guild_id))

    bot.setup_hook = guild_sync  # type: ignore[method-assign]
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        assert fake.command_syncs[0].scope == fake.guild_id
        await fake.send_command("plain")
        for context in ("dm", "group_dm", "user_install_guild"):
            with pytest.raises(LookupError, match="has not been synced globally"):
                await fake.send_command("anywhere", context=context)


# --- 2. option values are checked as Discord's client checks them ------------------------


async def test_option_values_discord_would_not_send_are_refused(fake: FakeDiscord) -> None:
    good = {"text": "abc", "count": 3, "pick": "a"}
    bad = [
        ({**good, "text": "a"}, "min_length is 2"),
        ({**good, "text": "abcdef"}, "max_length is 5"),
        ({**good, "text": "ab\U0001f600\U0001f600"}, "6 UTF-16 units long; max_length is 5"),
        ({**good, "text": "   "}, "empty"),
        ({**good, "count": 0}, "below min_value 1"),
        ({**good, "count": 11}, "above max_value 10"),
        ({**good, "count": 2.5}, "needs an integer"),
        ({**good, "pick": "c"}, "not one of the choices"),
        ({**good, "ratio": 1.5}, "above max_value"),
        ({**good, "loud": "yes"}, "needs a boolean"),
        ({"text": "abc", "pick": "a"}, "required option 'count' missing"),
    ]
    async with rules_bot(fake) as bot:
        for options, why in bad:
            with pytest.raises(ValueError, match=re.escape(why)):
                await fake.send_command("opts", options)
        assert not fake.interactions, "nothing impossible was dispatched"
        rec = await fake.send_command("opts", {**good, "text": "ab\U0001f600", "ratio": 1.0, "loud": True})
        await until_quiet(rec, bot)
    assert bot.values == [{"text": "ab\U0001f600", "count": 3, "pick": "a", "ratio": 1.0, "loud": True}]


# --- 3. slash-command attachments: ephemeral, signed, expiring ------------------------------


async def test_command_attachment_is_ephemeral_with_signed_urls(fake: FakeDiscord) -> None:
    data = b"\x89PNG not really" * 10
    downloads: list[bytes] = []
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            downloads.append(await bot.files[-1].read())
            await interaction.edit_original_response(content="read")

        bot.handler = handler
        rec = await fake.send_command("anywhere", attachments={"file": (data, "a b.png", "image/png")})
        await until_quiet(rec, bot)
        (att,) = rec.payload["data"]["resolved"]["attachments"].values()
        async with aiohttp.ClientSession() as http, http.get(att["proxy_url"]) as resp:
            proxied = (resp.status, await resp.read())
    assert att["ephemeral"] is True
    url = urlsplit(att["url"])
    assert url.path == f"/ephemeral-attachments/{fake.application_id}/{att['id']}/a%20b.png"
    query = parse_qs(url.query)
    expires, issued = int(query["ex"][0], 16), int(query["is"][0], 16)
    assert expires - issued == int(fake.attachment_ttl_s) and abs(issued - time.time()) < 5
    assert re.fullmatch(r"[0-9a-f]{64}", query["hm"][0])
    assert urlsplit(att["proxy_url"]).path == "/media" + url.path
    assert downloads == [data] and proxied == (200, data)


async def test_expired_or_tampered_attachment_url_is_gone(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await bot.files[-1].read()

        bot.handler = handler
        expired = fake.add_attachment(b"old bytes", "old.png", "image/png", ttl_s=0)
        rec = await fake.send_command("anywhere", {"file": expired})
        await until_quiet(rec, bot)
        fresh = fake.add_attachment(b"new bytes", "new.png", "image/png")
        tampered = re.sub(r"hm=[0-9a-f]+", "hm=" + "0" * 64, fresh["url"])
        async with aiohttp.ClientSession() as http:
            statuses = []
            for url in (expired["proxy_url"], tampered, fresh["url"]):
                async with http.get(url) as resp:
                    statuses.append((resp.status, await resp.text()))
    (error,) = bot.errors
    assert isinstance(error, discord.NotFound) and error.status == 404
    gone = "This content is no longer available."
    assert statuses[:2] == [(404, gone), (404, gone)] and statuses[2] == (200, "new bytes")


async def test_attachment_ttl_is_configurable() -> None:
    fake = FakeDiscord(attachment_ttl_s=60)
    async with serving(fake):
        att = fake.add_attachment(b"x", "x.png", "image/png")
    query = parse_qs(urlsplit(att["url"]).query)
    assert int(query["ex"][0], 16) - int(query["is"][0], 16) == 60


# --- 4. validation -------------------------------------------------------------------------


async def test_invalid_callback_types_are_refused(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with rules_bot(fake):
        rec = await fake.send_command("plain")  # no handler: nobody answers it
        await fake.wait_for(lambda f: rec.sent, timeout=5)
        answers = []
        async with aiohttp.ClientSession() as http:
            for body in ({"type": 7, "data": {"content": "x"}}, {"type": 99}, {"type": 1}, {"type": 6}):
                async with http.post(callback_url(fake, rec), json=body) as resp:
                    answers.append((resp.status, await resp.json()))
            async with http.post(callback_url(fake, rec), json={"type": 5, "data": {"flags": 4}}) as resp:
                deferred_flags = (resp.status, await resp.json())
            loading = {"type": 4, "data": {"content": "x", "flags": P.MESSAGE_FLAG_LOADING}}
            async with http.post(callback_url(fake, rec), json=loading) as resp:
                message_flags = (resp.status, await resp.json())
            assert not rec.acknowledged
            async with http.post(callback_url(fake, rec), json={"type": 4, "data": {"content": "ok"}}) as resp:
                assert resp.status == 204
    for status, body in answers:
        assert status == 400 and body["code"] == 50035 and body["message"] == "Invalid Form Body"
        assert body["errors"]["type"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"
    assert deferred_flags[0] == 400 and "flags" in deferred_flags[1]["errors"]["data"]
    assert message_flags[0] == 400 and "flags" in message_flags[1]["errors"]["data"]
    assert [b["type"] for _, b in rec.callbacks] == [4]
    assert len(fake.rejections) == 6


async def test_edit_accepts_only_the_documented_flags(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with deferred(fake) as (rec, http):
        url = webhook_url(fake, rec, "/messages/@original")
        refused = [await patch(http, url, {"content": "x", "flags": flags}) for flags in (64, 1 << 12, 1 << 7)]
        suppressed = await patch(http, url, {"content": "x", "flags": P.MESSAGE_FLAG_SUPPRESS_EMBEDS})
        unsuppressed = await patch(http, url, {"flags": 0})
        voice = {"content": "x", "flags": P.MESSAGE_FLAG_IS_VOICE_MESSAGE}  # not for follow-ups
        async with http.post(webhook_url(fake, rec), json=voice) as resp:
            followup_flags = (resp.status, await resp.json())
        quiet = {"content": "x", "flags": P.MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS | P.MESSAGE_FLAG_EPHEMERAL}
        async with http.post(webhook_url(fake, rec), json=quiet) as resp:
            quiet_followup = (resp.status, await resp.json())
    for status, body in refused:
        assert status == 400 and body["errors"]["flags"]["_errors"][0]["code"] == "MESSAGE_FLAGS_INVALID"
    assert suppressed[0] == 200 and suppressed[1]["flags"] & P.MESSAGE_FLAG_SUPPRESS_EMBEDS
    assert unsuppressed[0] == 200 and not unsuppressed[1]["flags"] & P.MESSAGE_FLAG_SUPPRESS_EMBEDS
    assert followup_flags[0] == 400 and error_paths(followup_flags[1]["errors"]) == {"flags"}
    assert quiet_followup[0] == 200 and quiet_followup[1]["flags"] & P.MESSAGE_FLAG_EPHEMERAL


EMBED_LIMITS = [
    # (error path, embed at the limit, embed one over it)
    ("embeds.0.title", {"title": "t" * 256}, {"title": "t" * 257}),
    ("embeds.0.description", {"description": "d" * 4096}, {"description": "d" * 4097}),
    ("embeds.0.fields", {"fields": [{"name": "n", "value": "v"}] * 25}, {"fields": [{"name": "n", "value": "v"}] * 26}),
    (
        "embeds.0.fields.0.name",
        {"fields": [{"name": "n" * 256, "value": "v"}]},
        {"fields": [{"name": "n" * 257, "value": "v"}]},
    ),
    (
        "embeds.0.fields.0.value",
        {"fields": [{"name": "n", "value": "v" * 1024}]},
        {"fields": [{"name": "n", "value": "v" * 1025}]},
    ),
    ("embeds.0.footer.text", {"footer": {"text": "f" * 2048}}, {"footer": {"text": "f" * 2049}}),
    ("embeds.0.author.name", {"author": {"name": "a" * 256}}, {"author": {"name": "a" * 257}}),
]


async def test_each_embed_limit_is_checked_on_its_own(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with deferred(fake) as (rec, http):
        url = webhook_url(fake, rec, "/messages/@original")
        results = []
        for path, ok, over in EMBED_LIMITS:
            results.append((path, await patch(http, url, {"embeds": [ok]}), await patch(http, url, {"embeds": [over]})))
        ten = await patch(http, url, {"embeds": [{"title": "x"}] * 10})
        eleven = await patch(http, url, {"embeds": [{"title": "x"}] * 11})
        # 2 x 3000 is exactly 6000 (allowed); 2 x 3001 is over, though each embed is within its own limits.
        total_ok = await patch(http, url, {"embeds": [{"description": "d" * 3000}] * 2})
        total_over = await patch(http, url, {"embeds": [{"description": "d" * 3001}] * 2})
        content_ok = await patch(http, url, {"content": "c" * 2000, "embeds": []})
        content_over = await patch(http, url, {"content": "c" * 2001})
    for path, (ok_status, _), (over_status, over_body) in results:
        assert ok_status == 200, path
        assert over_status == 400 and error_paths(over_body["errors"]) == {path}, (path, over_body)
    assert ten[0] == 200 and eleven[0] == 400 and error_paths(eleven[1]["errors"]) == {"embeds"}
    assert total_ok[0] == 200
    assert total_over[0] == 400
    assert total_over[1]["errors"]["embeds"]["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"
    assert content_ok[0] == 200 and content_over[0] == 400 and error_paths(content_over[1]["errors"]) == {"content"}


async def test_lengths_are_trimmed_then_counted_in_utf16_units(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    emoji = "\U0001f600"  # one code point, two UTF-16 code units
    async with deferred(fake) as (rec, http):
        url = webhook_url(fake, rec, "/messages/@original")
        padded = await patch(http, url, {"embeds": [{"title": "  " + "t" * 256 + " \n"}]})
        emoji_ok = await patch(http, url, {"embeds": [{"title": emoji * 128}]})
        emoji_over = await patch(http, url, {"embeds": [{"title": emoji * 129}]})  # 129 code points, 258 units
        content_over = await patch(http, url, {"content": emoji * 1000 + "c"})  # 1001 code points, 2001 units
        blank_field = await patch(http, url, {"embeds": [{"fields": [{"name": "   ", "value": "v"}]}]})
    assert padded[0] == 200, "surrounding whitespace is not counted"
    assert emoji_ok[0] == 200
    assert emoji_over[0] == 400 and error_paths(emoji_over[1]["errors"]) == {"embeds.0.title"}
    assert content_over[0] == 400 and error_paths(content_over[1]["errors"]) == {"content"}
    assert blank_field[0] == 400 and error_paths(blank_field[1]["errors"]) == {"embeds.0.fields.0.name"}


async def test_embed_urls_must_be_http_or_a_file_of_the_message(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            embed = discord.Embed(title="pic").set_thumbnail(url="attachment://thumb.jpg")
            embed.set_footer(text="f", icon_url="https://example.com/i.png")
            await interaction.edit_original_response(
                embed=embed, attachments=[discord.File(io.BytesIO(b"jpg"), "thumb.jpg")]
            )
            # A later edit may keep pointing at the file already on the message.
            await interaction.edit_original_response(embed=embed.set_image(url="attachment://thumb.jpg"))

        bot.handler = handler
        rec = await fake.send_command("anywhere")
        await until_quiet(rec, bot)
        assert not bot.errors and len(rec.edits) == 2
        url = webhook_url(fake, rec, "/messages/@original")
        bad = {
            "embeds.0.image.url": {"image": {"url": "ftp://example.com/x.png"}},
            "embeds.0.thumbnail.url": {"thumbnail": {"url": "attachment://missing.png"}},
            "embeds.0.author.icon_url": {"author": {"name": "a", "icon_url": "attachment://thumb.txt"}},
            "embeds.0.footer.icon_url": {"footer": {"text": "f", "icon_url": "javascript:alert(1)"}},
            "embeds.0.url": {"url": "attachment://thumb.jpg"},
        }
        async with aiohttp.ClientSession() as http:
            answers = {path: await patch(http, url, {"embeds": [embed]}) for path, embed in bad.items()}
            # Dropping the file from the message also drops it as an attachment:// target.
            dropped = await patch(
                http, url, {"attachments": [], "embeds": [{"image": {"url": "attachment://thumb.jpg"}}]}
            )
    for path, (status, body) in answers.items():
        assert status == 400 and error_paths(body["errors"]) == {path}, (path, body)
    assert dropped[0] == 400 and error_paths(dropped[1]["errors"]) == {"embeds.0.image.url"}


async def test_allowed_mentions_parse_excludes_explicit_lists(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with deferred(fake) as (rec, http):
        url = webhook_url(fake, rec, "/messages/@original")
        users = await patch(http, url, {"content": "<@1>", "allowed_mentions": {"parse": ["users"], "users": ["1"]}})
        roles = await patch(http, url, {"content": "<@&2>", "allowed_mentions": {"parse": ["roles"], "roles": ["2"]}})
        empty_list = await patch(http, url, {"content": "hi", "allowed_mentions": {"parse": ["users"], "users": []}})
        lists_only = await patch(http, url, {"content": "<@1>", "allowed_mentions": {"parse": [], "users": ["1"]}})
        unknown = await patch(http, url, {"content": "hi", "allowed_mentions": {"parse": ["here"]}})
    for status, body in (users, roles):
        assert status == 400
        assert body["errors"]["allowed_mentions"]["_errors"][0]["code"] == "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
    assert empty_list[0] == 200, "an empty list is documented as fine"
    assert lists_only[0] == 200
    assert unknown[0] == 400 and error_paths(unknown[1]["errors"]) == {"allowed_mentions.parse.0"}


async def test_empty_message_is_refused(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with deferred(fake) as (rec, http):
        url = webhook_url(fake, rec, "/messages/@original")
        emptied = await patch(http, url, {"content": ""})
        async with http.post(webhook_url(fake, rec), json={"content": ""}) as resp:
            followup = (resp.status, await resp.json())
    assert emptied == (400, {"message": "Cannot send an empty message", "code": 50006})
    assert followup == (400, {"message": "Cannot send an empty message", "code": 50006})


@pytest.mark.parametrize(("context", "refused"), [("user_install_guild", True), ("group_dm", True), ("guild", False)])
async def test_followups_are_capped_at_5_for_a_user_install_alone(
    fake: FakeDiscord, context: str, refused: bool
) -> None:
    fake.expect_rejections()
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("start")
            for n in range(6):
                await interaction.followup.send(f"more {n}")

        bot.handler = handler
        rec = await fake.send_command("anywhere", context=context)
        await until_quiet(rec, bot)
    if refused:
        (error,) = bot.errors
        assert isinstance(error, discord.HTTPException) and error.code == 40094
        assert len(rec.followups) == 5
    else:
        assert not bot.errors and len(rec.followups) == 6


async def test_command_sync_size_and_field_limits(fake: FakeDiscord) -> None:
    fake.expect_rejections()

    def command(n_choices: int, name: str = "big", description: str = "d") -> dict[str, Any]:
        choices = [{"name": f"{i:03d}" + "n" * 97, "value": f"{i:03d}" + "v" * 97} for i in range(n_choices)]
        options = [
            {"type": 3, "name": f"o{k}", "description": "x" * 100, "choices": choices[k * 25 : (k + 1) * 25]}
            for k in range((n_choices + 24) // 25)
        ]
        return {"type": 1, "name": name, "description": description, "options": options}

    url = f"{fake.api_base}/applications/{fake.application_id}/guilds/{fake.guild_id}/commands"
    under = command(38)  # 3 + 1 + 2 x (2 + 100) + 38 x 200 = 7808
    over = command(39)  # 8008
    assert P.command_size(under) == 7808 and P.command_size(over) == 8008
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http:
        answers = []
        for body in ([under], [over], [command(1, name="n" * 33)], [command(1, description="d" * 101)]):
            async with http.put(url, json=body) as resp:
                answers.append((resp.status, await resp.json()))
    assert answers[0][0] == 200
    assert (
        answers[1][0] == 400 and answers[1][1]["errors"]["0"]["_errors"][0]["code"] == "APPLICATION_COMMAND_TOO_LARGE"
    )
    assert answers[2][0] == 400 and "name" in answers[2][1]["errors"]["0"]
    assert answers[3][0] == 400 and "description" in answers[3][1]["errors"]["0"]
    assert len(fake.command_syncs) == 1


# --- 5. rate-limit headers ------------------------------------------------------------------


async def test_every_rest_answer_carries_rate_limit_headers(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await interaction.followup.send("one")
            await interaction.followup.send("two")
            await interaction.delete_original_response()

        bot.handler = handler
        rec = await fake.send_command("anywhere")
        await until_quiet(rec, bot)
    api = [r for r in fake.requests if r.matched]
    assert {r.status for r in api} >= {200, 204}
    for r in api:
        headers = r.response_headers
        assert all(h in headers for h in RATE_HEADERS) and re.fullmatch(r"[0-9a-f]{32}", headers["X-RateLimit-Bucket"])
        assert int(headers["X-RateLimit-Remaining"]) > 0, "ordinary tests never exhaust a bucket"
        assert float(headers["X-RateLimit-Reset"]) > time.time() - 5
    callback = next(r for r in api if r.path.endswith("/callback"))
    assert callback.status in (200, 204) and callback.response_headers["X-RateLimit-Limit"] == str(fake.rate_limit[0])
    async with aiohttp.ClientSession() as http, http.get(f"{fake.api_base}/users/@me") as resp:
        assert resp.status == 401 and all(h in resp.headers for h in RATE_HEADERS), "errors carry them too"


async def test_an_exhausted_bucket_is_waited_out_by_discord_py(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        fake.rate_limit = (2, 1.5)
        fake.reset_rate_limits()
        for _ in range(3):
            await bot.application_info()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http:
            url = f"{fake.api_base}/oauth2/applications/@me"
            statuses = []
            for _ in range(3):  # a client that ignores the headers gets Discord's 429
                async with http.get(url) as resp:
                    statuses.append((resp.status, resp.headers.get("X-RateLimit-Scope")))
    calls = [r for r in fake.requests if r.path == "/oauth2/applications/@me"][-6:-3]
    assert [r.status for r in calls] == [200, 200, 200]
    assert [r.response_headers["X-RateLimit-Remaining"] for r in calls] == ["1", "0", "1"]
    assert calls[2].time - calls[0].time >= 1.4, "discord.py slept until the bucket reset"
    assert statuses[-1] == (429, "user")


# --- 6. the first follow-up after a deferral ------------------------------------------------


async def test_first_followup_after_deferral_edits_the_loading_message(fake: FakeDiscord) -> None:
    sent: list[discord.WebhookMessage] = []
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)  # public
            sent.append(await interaction.followup.send("first", ephemeral=True, wait=True))
            sent.append(await interaction.followup.send("second", wait=True))

        bot.handler = handler
        rec = await fake.send_command("anywhere")
        await until_quiet(rec, bot)
    assert not bot.errors
    assert rec.original_id is not None
    original = rec.messages[rec.original_id]
    assert [b["content"] for _, b in rec.edits] == ["first"] and rec.edits_by_followup == 1
    assert original["content"] == "first"
    assert not original["flags"] & P.MESSAGE_FLAG_EPHEMERAL, "the deferral's visibility is kept"
    assert not original["flags"] & P.MESSAGE_FLAG_LOADING
    assert [b["content"] for _, b in rec.followups] == ["second"]
    assert sent[0].id == int(rec.original_id) and sent[1].id != sent[0].id


async def test_first_followup_after_deleting_the_deferral_is_unknown_message(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:

        async def handler(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.delete_original_response()
            await interaction.followup.send("too late")

        bot.handler = handler
        rec = await fake.send_command("anywhere")
        await until_quiet(rec, bot)
    (error,) = bot.errors
    assert isinstance(error, discord.NotFound) and error.code == 10008
    assert not rec.followups and not rec.edits


# --- 7. the harness re-raises a crashed bot -----------------------------------------------


async def test_running_bot_reraises_a_bot_that_died(fake: FakeDiscord) -> None:
    with pytest.raises(ConfigError, match="4004 Authentication failed"):
        async with running_bot(fake) as bot:
            # 4004 is not resumable: discord.py raises out of Client.start(), serve() says why.
            await fake.drop_gateway(code=4004)
            await fake.wait_for(lambda f: bot.is_closed(), timeout=10)


async def test_running_bot_passes_when_the_bot_closes_cleanly(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        pass
    assert bot.is_closed()


# --- 8. refused bodies fail the test at teardown ------------------------------------------


async def test_a_refused_body_fails_at_teardown_unless_expected() -> None:
    async def refused_sync(fake: FakeDiscord) -> int:
        url = f"{fake.api_base}/applications/{fake.application_id}/commands"
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http,
            http.put(url, json=[{"name": "Bad Name", "description": ""}]) as resp,
        ):
            return resp.status

    with pytest.raises(AssertionError, match=r"refused 1 request\(s\)[\s\S]*PUT /applications/\d+/commands -> 400"):
        async with serving(FakeDiscord()) as fake:
            assert await refused_sync(fake) == 400

    async with serving(FakeDiscord()) as fake:
        fake.expect_rejections()
        assert await refused_sync(fake) == 400
    assert len(fake.rejections) == 1

    # Faults a test injects are not rejections.
    async with serving(FakeDiscord()) as fake:
        fake.fail_next("PUT", r"/commands$", status=400)
        fake.fail_next("GET", r"^/users/@me$", status=500)
        assert await refused_sync(fake) == 400
    assert not fake.rejections


INNER_TESTS = """
import aiohttp
import pytest

from tests.fakediscord.fixtures import fake

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def refused_sync(fake):
    url = f"{fake.api_base}/applications/{fake.application_id}/commands"
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.put(url, json=[{"name": "Bad Name"}]) as resp:
        return resp.status


async def test_refused_unnoticed(fake):
    assert await refused_sync(fake) == 400  # the test body passes...


async def test_refused_on_purpose(fake):
    fake.expect_rejections()
    assert await refused_sync(fake) == 400
"""


def test_the_fake_fixture_fails_a_test_whose_request_was_refused(tmp_path: Path) -> None:
    """The wiring itself: a real pytest run of two tests using tests/fakediscord/fixtures.py's ``fake``."""
    root = REPO
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    ini = ["-o", "asyncio_mode=auto"]
    ini += ["-o", "asyncio_default_fixture_loop_scope=session", "-o", "asyncio_default_test_loop_scope=session"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            *ini,
            str(tmp_path),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert re.search(r"ERROR .*test_refused_unnoticed", out), out
    assert "test_refused_on_purpose" not in out.split("short test summary info")[-1], out
    # Both bodies pass; the unnoticed refusal errors at teardown.
    assert re.search(r"\b2 passed\b.*\b1 error\b", out) and "FakeDiscord refused 1 request(s)" in out, out


async def test_autocomplete_is_a_type_4_interaction_answered_with_choices(fake: FakeDiscord) -> None:
    async with rules_bot(fake) as bot:
        bot.choices = [app_commands.Choice(name=f"Choice {i}", value=f"v{i}") for i in range(3)]
        rec = await fake.send_command("suggest", {"query": "par"}, focused="query")
        await rec.wait_for(lambda r: bool(r.callbacks), 5)
        with pytest.raises(ValueError, match="has no autocomplete"):
            await fake.send_command("suggest", {"query": "x", "other": "y"}, focused="other")
        with pytest.raises(ValueError, match="required option"):
            await fake.send_command("suggest", {"other": "y"})  # a command still needs its options
    assert rec.payload["type"] == 4
    assert rec.payload["data"]["options"] == [{"name": "query", "type": 3, "value": "par", "focused": True}]
    callback = rec.callbacks[0][1]
    assert callback["type"] == 8 and [c["value"] for c in callback["data"]["choices"]] == ["v0", "v1", "v2"]


@pytest.mark.parametrize(
    ("choices", "field"),
    [
        ([app_commands.Choice(name=f"c{i}", value=f"v{i}") for i in range(26)], "choices"),
        ([app_commands.Choice(name="long", value="x" * 101)], "value"),
        ([app_commands.Choice(name="n" * 101, value="x")], "name"),
    ],
)
async def test_autocomplete_results_outside_the_documented_limits_are_refused(
    fake: FakeDiscord, choices: list[app_commands.Choice[str]], field: str
) -> None:
    fake.expect_rejections()
    async with rules_bot(fake) as bot:
        bot.choices = choices
        rec = await fake.send_command("suggest", {"query": ""}, focused="query")
        await fake.wait_for(lambda f: bool(f.rejections), timeout=5)
        async with aiohttp.ClientSession() as http:  # the same body again, to read the error
            body = {"type": 8, "data": {"choices": [{"name": c.name, "value": c.value} for c in choices]}}
            async with http.post(callback_url(fake, rec), json=body) as resp:
                status, error = resp.status, await resp.json()
    assert not rec.callbacks, "refused, so not acknowledged"
    assert fake.rejections[0].json["type"] == 8
    assert status == 400 and error["code"] == 50035 and field in str(error["errors"])


async def test_autocomplete_cannot_be_answered_with_a_message(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    async with rules_bot(fake) as bot:
        bot.choices = []
        rec = await fake.send_command("suggest", {"query": "a"}, focused="query")
        await fake.wait_for(lambda f: rec.sent, timeout=5)
        message = {"type": 4, "data": {"content": "x"}}
        async with aiohttp.ClientSession() as http, http.post(callback_url(fake, rec), json=message) as resp:
            status, body = resp.status, await resp.json()
    assert status == 400 and body["errors"]["type"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"


def _text_input_modal(**field: Any) -> dict[str, Any]:
    component = {"type": 4, "custom_id": "labels", "style": 2, **field}
    return {
        "type": 9,
        "data": {
            "custom_id": "m",
            "title": "Classify image",
            "components": [{"type": 18, "label": "Labels", "component": component}],
        },
    }


async def test_modals_take_labelled_text_inputs_within_the_documented_limits(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    action_row = {
        "type": 9,
        "data": {
            "custom_id": "m",
            "title": "t",
            "components": [{"type": 1, "components": [{"type": 4, "custom_id": "x", "style": 1, "label": "x"}]}],
        },
    }
    too_long_label = _text_input_modal()
    too_long_label["data"]["components"][0]["label"] = "x" * 46
    refused_bodies = [
        action_row,
        too_long_label,
        _text_input_modal(style=3),
        _text_input_modal(max_length=10, value="x" * 11),
        _text_input_modal(placeholder="p" * 101),
    ]
    async with rules_bot(fake):
        statuses = []
        async with aiohttp.ClientSession() as http:
            for body in refused_bodies:
                rec = await fake.send_command("plain")
                await fake.wait_for(lambda f, rec=rec: rec.sent, timeout=5)
                async with http.post(callback_url(fake, rec), json=body) as resp:
                    statuses.append(resp.status)
            good = await fake.send_command("plain")
            await fake.wait_for(lambda f: good.sent, timeout=5)
            async with http.post(callback_url(fake, good), json=_text_input_modal(value="cat, dog")) as resp:
                assert resp.status == 204
            with pytest.raises(ValueError, match="is longer than max_length"):
                await fake.submit_modal(good, {"labels": "x" * 4001})
            submitted = await fake.submit_modal(good, {"labels": "cat, dog, fox"})
            await fake.wait_for(lambda f: submitted.sent, timeout=5)
            async with http.post(callback_url(fake, submitted), json=_text_input_modal()) as resp:
                modal_after_modal = resp.status
    assert statuses == [400] * len(refused_bodies)
    assert modal_after_modal == 400, "a modal cannot answer a modal submission"
    data = submitted.payload["data"]
    assert submitted.payload["type"] == 5 and data["custom_id"] == "m"
    assert data["components"][0]["component"] == {"type": 4, "id": 0, "custom_id": "labels", "value": "cat, dog, fox"}
