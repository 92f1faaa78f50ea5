"""Self-test of tests.fakediscord against the real discord.py client.

A tiny bot defined here (not the project's) exercises each part of the fake the
e2e tests rely on: login, gateway READY/heartbeats/RESUME, guild command sync,
interaction callbacks and follow-ups, CDN downloads, and the fault switches,
so a broken harness shows up here rather than as a mysterious bot failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord, RecordedRequest, running_client

FOLLOWUP = r"^/webhooks/\d+/[^/]+$"
GUILD_SYNC = r"^/applications/\d+/guilds/\d+/commands$"


class EchoBot(discord.Client):
    """Covers each way a bot answers: /echo defers then follows up (reading an optional
    attachment), /echo_now answers at once ephemerally, /echo_edit defers then edits
    @original, /echo_file uploads files and edits/fetches/deletes its messages."""

    def __init__(self, guild_id: int) -> None:
        # A short guild_ready_timeout only shortens discord.py's wait before on_ready.
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.guild = discord.Object(guild_id)
        self.seen: list[discord.Interaction] = []
        self.downloads: list[bytes] = []
        self.fetched: list[discord.InteractionMessage] = []
        self.ready_fired = False

        @self.tree.command(description="Echo text back after thinking")
        @app_commands.describe(text="What to echo", file="Optional file to describe")
        async def echo(interaction: discord.Interaction, text: str, file: discord.Attachment | None = None) -> None:
            self.seen.append(interaction)
            await interaction.response.defer(thinking=True)
            extra = ""
            if file is not None:
                data = await file.read()
                self.downloads.append(data)
                extra = f" [{file.filename} {len(data)}B {hashlib.sha256(data).hexdigest()[:12]}]"
            await interaction.followup.send(f"echo: {text}{extra}")

        @self.tree.command(description="Echo text back at once, only to the caller")
        async def echo_now(interaction: discord.Interaction, text: str) -> None:
            self.seen.append(interaction)
            await interaction.response.send_message(f"now: {text}", ephemeral=True)

        @self.tree.command(description="Defer ephemerally, then edit the original response")
        async def echo_edit(interaction: discord.Interaction, text: str, delay: float = 0.0) -> None:
            await asyncio.sleep(delay)  # a bot too slow to acknowledge
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.edit_original_response(content=f"edited: {text}")

        @self.tree.command(description="Reply with files, then edit, fetch and delete")
        async def echo_file(interaction: discord.Interaction, text: str) -> None:
            first = discord.File(io.BytesIO(b"first"), "a.txt")
            await interaction.response.send_message(text, file=first)  # multipart callback
            second = discord.File(io.BytesIO(b"second"), "b.txt")
            msg = await interaction.followup.send("more", file=second, wait=True)
            await interaction.edit_original_response(content=f"{text} (edited)")
            await msg.edit(content="more (edited)")
            self.fetched.append(await interaction.original_response())
            await msg.delete()

    async def setup_hook(self) -> None:
        self.tree.copy_global_to(guild=self.guild)
        await self.tree.sync(guild=self.guild)

    async def on_ready(self) -> None:
        self.ready_fired = True


def requests_to(fake: FakeDiscord, method: str, path_regex: str) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.method == method and re.search(path_regex, r.path)]


async def test_login_ready_sync_and_heartbeats(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        await fake.wait_for(lambda f: len(f.heartbeats) >= 3, timeout=3)
        await fake.wait_for(lambda f: bot.ready_fired, timeout=3)

        # Login went through REST with the bot token; the gateway was the patched one.
        me = requests_to(fake, "GET", r"^/users/@me$")
        assert me and me[0].headers["Authorization"] == "Bot fake-token"
        assert me[0].headers["User-Agent"].startswith("DiscordBot (https://github.com/Rapptz")
        assert requests_to(fake, "GET", r"^/oauth2/applications/@me$")
        conn = fake.connections[0]
        assert conn.path == "/gateway" and conn.query["v"] == "10"
        assert conn.query["encoding"] == "json"
        # zlib-stream is honoured; zstd-stream (asked for if zstandard is installed) is
        # answered with plain text frames, which discord.py also accepts.
        assert conn.compressed == (conn.query.get("compress") == "zlib-stream")
        assert fake.identifies == 1 and fake.resumes == 0

        # Guild sync: copy_global_to + sync(guild=...) is one PUT to the guild route.
        (sync,) = fake.command_syncs
        assert sync.scope == fake.guild_id
        by_name = {c["name"]: c for c in sync.commands}
        assert set(by_name) == {"echo", "echo_now", "echo_edit", "echo_file"}
        assert [(o["name"], o["type"], o.get("required", False)) for o in by_name["echo"]["options"]] == [
            ("text", 3, True),
            ("file", 11, False),
        ]
        assert bot.user is not None and bot.user.id == fake.bot_user_id
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None and guild.get_channel(fake.channel_id) is not None

        # Heartbeats follow HELLO's interval (first one immediately, per discord.py).
        gaps = [b - a for a, b in zip(fake.heartbeats, fake.heartbeats[1:], strict=False)]
        assert all(0.3 < g < 1.0 for g in gaps[1:]), gaps
    assert not fake.unmatched_requests
    # client.close() asks for 1000, but its pending poll_event sees the socket closing
    # first and closes with 4000 (discord.py 2.7.1 behaviour); either way the client
    # closed it.
    assert fake.connections[0].close_code in (1000, 4000)


async def test_deferred_followup_with_attachment(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    payload = b"\x89PNG fake image bytes" * 100
    fake.cdn_delay = 0.2  # slow download: the bot must still ack at once
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo", {"text": "hi"}, attachments={"file": (payload, "cat.png", "image/png")})
        final = await rec.wait_final(timeout=5)

    digest = hashlib.sha256(payload).hexdigest()[:12]
    assert final["content"] == f"echo: hi [cat.png {len(payload)}B {digest}]"
    assert bot.downloads == [payload]
    assert len(fake.cdn_requests) == 1 and fake.cdn_requests[0].status == 200
    # Deferred with thinking: callback type 5, then one follow-up after the download,
    # which (the first after a deferral) edits the loading message instead of adding one.
    assert [body["type"] for _, body in rec.callbacks] == [5]
    assert rec.ack_latency is not None and rec.ack_latency < 0.2
    assert not rec.followups and rec.edits_by_followup == 1
    assert rec.edits[0][0] - rec.callbacks[0][0] >= 0.2
    assert requests_to(fake, "POST", FOLLOWUP)[0].query["wait"] == "1"

    (interaction,) = bot.seen
    assert isinstance(interaction.user, discord.Member)
    assert interaction.user.id == fake.user_id
    assert interaction.guild is not None and interaction.guild.id == fake.guild_id
    assert isinstance(interaction.channel, discord.TextChannel)
    assert not fake.unmatched_requests


async def test_immediate_ephemeral_reply(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo_now", {"text": "psst"})
        final = await rec.wait_final(timeout=5)
    assert final["content"] == "now: psst"
    assert final["flags"] & 64  # EPHEMERAL
    assert rec.callbacks[0][1]["type"] == 4 and not rec.followups
    assert rec.ack_latency is not None and rec.ack_latency < 1


async def test_followup_429_is_waited_out(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    fake.fail_next("POST", FOLLOWUP, status=429, retry_after=0.5)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo", {"text": "limited"})
        final = await rec.wait_final(timeout=5)
    assert final["content"] == "echo: limited"
    first, second = requests_to(fake, "POST", FOLLOWUP)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.5  # discord.py slept retry_after
    assert len(rec.edits) == 1 and not rec.followups  # accepted once (as the deferral's edit)


async def test_global_429_on_sync_is_waited_out(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    fake.fail_next("PUT", GUILD_SYNC, status=429, retry_after=0.3, global_=True)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
    first, second = requests_to(fake, "PUT", GUILD_SYNC)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.3


async def test_followup_500_is_retried(fake: FakeDiscord) -> None:
    # discord.py's webhook adapter retries any 5xx up to 5 times, sleeping 1 + 2*attempt s.
    bot = EchoBot(fake.guild_id)
    fake.fail_next("POST", FOLLOWUP, status=500)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo", {"text": "flaky"})
        final = await rec.wait_final(timeout=5)
    assert final["content"] == "echo: flaky"
    first, second = requests_to(fake, "POST", FOLLOWUP)
    assert (first.status, second.status) == (500, 200)
    assert second.time - first.time >= 1.0


async def test_gateway_drop_resumes_and_replays(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        before = await fake.send_command("echo", {"text": "one"})
        await before.wait_final(timeout=5)

        await fake.drop_gateway(code=4000)
        # Dispatched while the bot is away: buffered, then replayed after RESUME.
        during = await fake.send_command("echo", {"text": "two"})
        await fake.wait_until_ready(timeout=5)
        final = await during.wait_final(timeout=5)

        after = await fake.send_command("echo", {"text": "three"})
        assert (await after.wait_final(timeout=5))["content"] == "echo: three"

    assert final["content"] == "echo: two"
    assert fake.resumes == 1 and fake.identifies == 1
    dropped, resumed = fake.connections
    assert dropped.close_code == 4000
    assert resumed.resumed and not resumed.identified
    assert resumed.path == "/resume-gateway"  # READY's resume_gateway_url was used


async def test_wrong_token_is_login_failure(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    with pytest.raises(discord.LoginFailure):
        async with running_client(bot, fake, token="not-the-token"):
            pass
    (me,) = fake.requests
    assert me.path == "/users/@me" and me.status == 401
    assert not fake.connections and bot.is_closed()


async def test_raw_rest_errors(fake: FakeDiscord) -> None:
    """Shapes the bot never triggers through discord.py: checked directly."""
    fake.expect_rejections()
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo_now", {"text": "x"})
        await rec.wait_final(timeout=5)
    url = f"{fake.api_base}/interactions/{rec.id}/{rec.token}/callback"
    auth = {"Authorization": "Bot wrong"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
            assert resp.status == 400
            assert await resp.json() == {
                "message": "Interaction has already been acknowledged.",
                "code": 40060,
            }
        async with http.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}
        started = time.monotonic()
        async with http.get(f"{fake.api_base}/no/such/route") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 0
        assert time.monotonic() - started < 1
    assert [r.path for r in fake.unmatched_requests] == ["/no/such/route"]


async def test_multipart_edits_fetch_and_delete(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo_file", {"text": "files"})
        await rec.wait_for(lambda r: bool(r.deletes), timeout=5)
        (original,) = bot.fetched
        async with aiohttp.ClientSession() as http, http.get(original.attachments[0].url) as resp:
            served = await resp.read()

    assert rec.callbacks[0][1]["type"] == 4
    assert rec.callbacks[0][1]["data"]["content"] == "files"
    assert [(f.filename, f.data) for f in rec.files] == [("a.txt", b"first"), ("b.txt", b"second")]
    assert rec.followups[0][1]["content"] == "more"
    assert [body["content"] for _, body in rec.edits] == ["files (edited)"]
    assert [body["content"] for _, _, body in rec.followup_edits] == ["more (edited)"]
    followup_id = rec.followup_edits[0][1]
    assert rec.deletes[0][1] == followup_id and followup_id not in rec.messages
    # GET @original reflects the edit and keeps the uploaded file, served by the fake CDN.
    assert original.content == "files (edited)"
    assert [a.filename for a in original.attachments] == ["a.txt"] and served == b"first"
    assert not fake.unmatched_requests


async def test_deferral_then_edit_original(fake: FakeDiscord) -> None:
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo_edit", {"text": "later"})
        final = await rec.wait_final(timeout=5)
    assert final["content"] == "edited: later"
    ((_, ack),) = rec.callbacks
    assert ack == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral
    assert not rec.followups and len(rec.edits) == 1


async def test_late_ack_is_unknown_interaction(fake: FakeDiscord) -> None:
    fake.ack_deadline = 0.2  # Discord's is 3 s
    bot = EchoBot(fake.guild_id)
    async with running_client(bot, fake):
        await fake.wait_for_sync()
        rec = await fake.send_command("echo_edit", {"text": "slow", "delay": 0.3})
        late = await fake.wait_for_request("POST", r"/callback$", timeout=5)
    assert late.status == 404 and not rec.callbacks and rec.final is None


async def test_invalid_command_sync_is_rejected(fake: FakeDiscord) -> None:
    fake.expect_rejections()
    url = f"{fake.api_base}/applications/{fake.application_id}/commands"
    bad = [{"name": "Bad Name", "description": "", "type": 1}]
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as http,
        http.put(url, json=bad) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400 and body["code"] == 50035
    assert set(body["errors"]["0"]) == {"name", "description"}
    assert not fake.command_syncs
