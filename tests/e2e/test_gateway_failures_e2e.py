"""The bot's documented reaction to every gateway close code and failure (issue 16).

topics/opcodes-and-status-codes.mdx "Gateway Close Event Codes" says which codes may
reconnect; events/gateway.mdx "Resuming" says where (resume_gateway_url for RESUME,
the cached gateway URL for IDENTIFY) and "Sending Heartbeats" what a zombie is. The
fatal codes end `python -m bot run` with one line and exit code 78.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import discord
import discord.client
import pytest
from discord.gateway import DiscordWebSocket

from bot.discord.client import create_bot, serve
from bot.discord.gateway import is_zombie
from bot.engine import ClipEngine
from bot.errors import ConfigError
from tests.fakediscord.gateway import GATEWAY_PATH, RESUME_GATEWAY_PATH
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import final_messages, wait_outcome
from tests.support.paths import REPO, TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR, make_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXIT_CONFIG = 78


async def answered(fake: FakeDiscord) -> None:
    """A /similar sent now (buffered if the bot is away) gets exactly one answer."""
    rec = await fake.send_command("similar", {"text": "cat", "others": "dog, car"})
    kind, _ = await wait_outcome(rec, 30)
    assert kind == "answer" and final_messages(rec) == 1


# --- resumable: RESUME on resume_gateway_url, events replayed ------------------------------


@pytest.mark.parametrize("code", [4000, 4001, 4002, 4003, 4005, 4008, None])
async def test_resumable_close_codes_resume_and_replay(fake: FakeDiscord, engine: ClipEngine, code: int | None) -> None:
    """"Reconnect: true" codes, and a drop without any close code: RESUME, nothing lost."""
    async with running_bot(fake, engine=engine):
        await fake.drop_gateway(code)
        await answered(fake)  # dispatched while the bot was away, or just after it resumed
        await fake.wait_for(lambda f: f.resumes >= 1, 15)
    # (A loaded machine may add a resume of its own, for a late heartbeat; never an IDENTIFY.)
    assert fake.identifies == 1 and fake.sessions_resumed >= 1
    last = fake.connections[-1]
    assert last.resumed and last.path == RESUME_GATEWAY_PATH


async def test_op_7_reconnect_resumes(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        await fake.send_reconnect()
        await fake.wait_for(lambda f: f.sessions_resumed >= 1, 15)
        await answered(fake)
    assert fake.identifies == 1 and fake.connections[-1].path == RESUME_GATEWAY_PATH


async def test_op_9_resumable_resumes(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        await fake.invalidate_session(resumable=True)
        await fake.wait_for(lambda f: f.sessions_resumed >= 1, 15)
        await answered(fake)
    assert fake.identifies == 1


async def test_op_1_heartbeat_request_is_answered_at_once(engine: ClipEngine) -> None:
    # A long interval: any heartbeat soon after the request is the answer to it.
    from tests.fakediscord.fixtures import serving

    async with serving(FakeDiscord(heartbeat_interval_ms=30_000)) as fake, running_bot(fake, engine=engine):
        before = len(fake.heartbeats)
        await fake.request_heartbeat()
        await fake.wait_for(lambda f: len(f.heartbeats) > before, 10)


# --- a new session: IDENTIFY on the cached gateway URL ---------------------------------------


@pytest.mark.parametrize("code", [4007, 4009])
async def test_new_session_codes_identify_at_once_on_the_cached_url(
    fake: FakeDiscord, engine: ClipEngine, code: int
) -> None:
    """4007/4009 "Reconnect and start a new session": no RESUME that could only fail."""
    async with running_bot(fake, engine=engine):
        await fake.drop_gateway(code)
        await fake.wait_for(lambda f: f.sessions_started >= 2, 20)
        await answered(fake)
    assert fake.resumes == 0
    assert [c.path for c in fake.connections if c.identified] == [GATEWAY_PATH, GATEWAY_PATH]


async def test_op_9_not_resumable_after_a_resume_identifies_on_the_cached_url(
    fake: FakeDiscord, engine: ClipEngine
) -> None:
    """The issue's bug: discord.py kept resume_gateway_url for this IDENTIFY."""
    async with running_bot(fake, engine=engine):
        await fake.drop_gateway()
        await fake.wait_for(lambda f: f.sessions_resumed >= 1 and f.connected, 15)
        await fake.invalidate_session(resumable=False)
        await fake.wait_for(lambda f: f.sessions_started >= 2, 20)
        await answered(fake)
    identified = [c for c in fake.connections if c.identified]
    assert [c.path for c in identified] == [GATEWAY_PATH, GATEWAY_PATH]
    assert not fake.gateway_violations


async def test_without_the_workaround_discordpy_identifies_on_the_stale_resume_url(
    fake: FakeDiscord, engine: ClipEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeps the workaround honest: when this fails, discord.py fixed it; drop DocumentedGateway."""
    fake.expect_gateway_violations()
    async with running_bot(fake, engine=engine):
        monkeypatch.setattr(discord.client, "DiscordWebSocket", DiscordWebSocket)
        await fake.drop_gateway()
        await fake.wait_for(lambda f: f.sessions_resumed >= 1 and f.connected, 15)
        await fake.invalidate_session(resumable=False)
        await fake.wait_for(lambda f: f.sessions_started >= 2, 20)
    assert [c.path for c in fake.connections if c.identified] == [GATEWAY_PATH, RESUME_GATEWAY_PATH]
    assert fake.gateway_violations[0].endswith("IDENTIFY on resume_gateway_url instead of the cached gateway URL")


# --- zombies ------------------------------------------------------------------------------


async def test_a_zombie_connection_is_closed_and_resumed(fake: FakeDiscord, engine: ClipEngine) -> None:
    """Events still flow but heartbeats go unacknowledged: discord.py alone never notices."""
    interval = fake.heartbeat_interval_ms / 1000
    async with running_bot(fake, engine=engine) as bot:
        zombie = fake.connections[-1]
        fake.ack_heartbeats = False
        started = time.monotonic()
        await answered(fake)  # the link still delivers
        await fake.wait_for(lambda f: f.sessions_resumed >= 1, 20)
        took = time.monotonic() - started
        fake.ack_heartbeats = True
        await answered(fake)
    print(f"zombie closed and resumed {took:.2f} s ({took / interval:.1f} heartbeat intervals) after ACKs stopped")
    assert zombie.close_code == 4000, "closed by the bot with a resumable code (not 1000/1001)"
    assert bot.watchdog.closed >= 1 and fake.identifies == 1


def test_zombie_rule_is_two_intervals_without_an_ack() -> None:
    class KeepAlive:
        interval = 41.25
        _last_ack = 100.0

    keep_alive: Any = KeepAlive()
    assert not is_zombie(keep_alive, 100.0 + 41.25 + 5, grace_s=0)  # one interval and a slow ACK: healthy
    assert not is_zombie(keep_alive, 100.0 + 2 * 41.25, grace_s=0)
    assert is_zombie(keep_alive, 100.0 + 2 * 41.25 + 0.01, grace_s=0)  # the heartbeat in between: no ACK
    assert not is_zombie(keep_alive, 100.0 + 2 * 41.25 + 4.9)  # the default grace: 5 s, 0.12 intervals
    assert is_zombie(keep_alive, 100.0 + 2 * 41.25 + 5.01)


# --- fatal: one line, exit code 78 ------------------------------------------------------------


async def test_token_reset_while_running_is_one_line(fake: FakeDiscord, engine: ClipEngine) -> None:
    with pytest.raises(ConfigError) as caught:
        async with running_bot(fake, engine=engine) as bot:
            fake.reset_token()
            await fake.drop_gateway()  # the RESUME with the old token gets 4004
            await fake.wait_for(lambda f: bot.is_closed(), 15)
    message = str(caught.value)
    assert message.startswith("Discord closed the gateway with 4004 Authentication failed: the token was reset")
    assert "DISCORD_TOKEN" in message and "\n" not in message and fake.token not in message


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (4004, "4004 Authentication failed: the token was reset or revoked; put the new one"),
        (4010, "4010 Invalid shard: a shard id is not below the shard count"),
        (4011, "4011 Sharding required: the bot is in too many servers for one connection"),
        (4012, "4012 Invalid API version"),
        (4013, "4013 Invalid intents: {intents} is not a valid intents value"),
        (4014, "enable the privileged intents it asks for in the Developer Portal"),
    ],
)
async def test_fatal_close_codes_end_the_bot_with_one_line(fake: FakeDiscord, code: int, says: str) -> None:
    fake.close_next_identify(code)
    bot = create_bot(make_settings(discord_token=fake.token, discord_guild_id=fake.guild_id))
    with pytest.raises(ConfigError) as caught:
        await asyncio.wait_for(serve(bot), 30)
    message = str(caught.value)
    assert says.format(intents=bot.intents.value) in message and "\n" not in message
    assert bot.is_closed() and len(fake.connections) == 1, "no reconnect loop"


async def test_disallowed_intents_name_the_intent_and_where_to_enable_it(fake: FakeDiscord) -> None:
    bot = create_bot(make_settings(discord_token=fake.token, discord_guild_id=fake.guild_id))
    bot._connection._intents.message_content = True  # as a feature needing it would ask
    with pytest.raises(ConfigError) as caught:
        await asyncio.wait_for(serve(bot), 30)
    assert str(caught.value) == (
        "Discord refused the gateway intents (4014 Disallowed intents): enable the Message Content Intent in the "
        "Developer Portal (https://discord.com/developers/applications) → your app → Bot → Privileged Gateway "
        "Intents (or turn off the setting that asks for it)."
    )
    assert fake.connections[-1].close_code == 4014


BOOT = """
import sys, yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = sys.argv[1], yarl.URL(sys.argv[2])
from bot.cli import main
sys.exit(main(["run"]))
"""


async def run_bot_process(fake: FakeDiscord, token: str, tmp_path: Path) -> tuple[int, str]:
    """`python -m bot run` in a child process against the stand-in: (exit code, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "CLIP_"))}
    env.update(
        DISCORD_TOKEN=token,
        DISCORD_GUILD_ID=str(fake.guild_id),
        CLIP_MODEL_DIR=str(TINY_MODEL_DIR),
        MODEL_CACHE_DIR=str(TEST_CACHE_DIR),
        CLIP_EXECUTION_PROVIDERS="CPUExecutionProvider",
        DATA_DIR=str(tmp_path),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    tmp_path.mkdir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BOOT,
        fake.api_base,
        fake.gateway_url,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


async def test_fatal_errors_exit_78_with_one_error_line(fake: FakeDiscord, tmp_path: Path) -> None:
    """The process as a supervisor sees it: a wrong token at the REST login (401), and a token
    reset between the login and IDENTIFY (4004); the other fatal codes share the path (`ConfigError`).
    Both processes run at once, to keep the suite's wall time down."""
    fake.close_next_identify(4004)
    (login, login_err), (gateway, gateway_err) = await asyncio.gather(
        run_bot_process(fake, "not-the-token", tmp_path / "login"),
        run_bot_process(fake, fake.token, tmp_path / "gateway"),
    )
    for code, stderr, says in ((login, login_err, "401 Unauthorized"), (gateway, gateway_err, "4004 Authentication")):
        assert code == EXIT_CONFIG, stderr
        # Log lines may follow it (the model load finishes in its thread before the process exits).
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and says in errors[0], stderr
        assert "Traceback" not in stderr and fake.token not in stderr
    assert len(fake.connections) == 1, "one IDENTIFY, refused; no reconnect loop"
