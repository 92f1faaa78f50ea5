"""Self-tests of the stand-in's gateway rules (tests/fakediscord/gateway.py).

Each test drives the stand-in with a bare websocket client, so that it checks the
stand-in's own rule exactly (the bot's reactions are in tests/e2e/test_gateway_failures_e2e.py).
The docs page each rule follows is cited in the stand-in next to the rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import payloads as P
from tests.fakediscord.fixtures import serving
from tests.fakediscord.gateway import GATEWAY_PATH, RESUME_GATEWAY_PATH
from tests.fakediscord.server import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Raw:
    """A bare gateway client: JSON text frames, no compression, nothing automatic."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seq: int | None = None

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))

    async def recv(self, timeout: float = 5) -> dict[str, Any]:  # noqa: ASYNC109
        """The next frame; raises `Closed` with the close code if the server closed."""
        msg = await self.ws.receive(timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            raise Closed(self.ws.close_code)
        frame = json.loads(msg.data)
        if frame.get("s") is not None:
            self.seq = frame["s"]
        return frame

    async def until(self, op: int, timeout: float = 5) -> dict[str, Any]:  # noqa: ASYNC109
        while True:
            frame = await self.recv(timeout)
            if frame["op"] == op:
                return frame

    async def closed_with(self, timeout: float = 5) -> int | None:  # noqa: ASYNC109
        with contextlib.suppress(Closed):
            while True:
                await self.recv(timeout)
        return self.ws.close_code

    async def identify(self, token: str, intents: Any = P.INTENT_GUILDS, **extra: Any) -> None:
        await self.send(P.OP_IDENTIFY, {"token": token, "intents": intents, "properties": {}, **extra})

    async def resume(self, token: str, session_id: str, seq: Any) -> None:
        await self.send(P.OP_RESUME, {"token": token, "session_id": session_id, "seq": seq})


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


@contextlib.asynccontextmanager
async def raw(fake: FakeDiscord, path: str = GATEWAY_PATH, v: str = "10") -> AsyncIterator[Raw]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://127.0.0.1:{fake.port}{path}?v={v}&encoding=json") as ws,
    ):
        yield Raw(ws)


async def ready(fake: FakeDiscord, client: Raw) -> dict[str, Any]:
    """HELLO, IDENTIFY, READY: the READY payload."""
    await client.until(P.OP_HELLO)
    await client.identify(fake.token)
    frame = await client.until(P.OP_DISPATCH)
    assert frame["t"] == "READY"
    return frame["d"]


@contextlib.asynccontextmanager
async def standin(**settings: Any) -> AsyncIterator[FakeDiscord]:
    """A stand-in with its own settings; gateway rules broken on purpose are expected."""
    async with serving(FakeDiscord(**settings)) as fake:
        fake.expect_gateway_violations()
        yield fake


# --- heartbeats -------------------------------------------------------------------------


async def test_zombie_switch_withholds_acks_but_still_delivers_events() -> None:
    async with standin() as fake, raw(fake) as client:
        await ready(fake, client)
        await client.send(P.OP_HEARTBEAT, client.seq)
        assert (await client.until(P.OP_HEARTBEAT_ACK))["op"] == P.OP_HEARTBEAT_ACK
        fake.ack_heartbeats = False
        await client.send(P.OP_HEARTBEAT, client.seq)
        assert fake._session is not None
        await fake._dispatch(fake._session, "TYPING_START", {})
        frame = await client.recv()
        assert frame["t"] == "TYPING_START", "events still flow"
        with pytest.raises(asyncio.TimeoutError):
            await client.until(P.OP_HEARTBEAT_ACK, timeout=0.5)


async def test_heartbeat_request_is_op_1() -> None:
    async with standin() as fake, raw(fake) as client:
        await ready(fake, client)
        await fake.request_heartbeat()
        frame = await client.until(P.OP_HEARTBEAT)
        assert frame["d"] is None


async def test_a_client_that_stops_heartbeating_is_closed_and_may_resume() -> None:
    async with standin(heartbeat_interval_ms=200, heartbeat_grace_s=0.2) as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            assert await client.closed_with() == 4000  # never heartbeated
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_DISPATCH))["t"] == "RESUMED", "4000 keeps the session"


# --- sessions ---------------------------------------------------------------------------


async def test_a_disconnected_session_expires_after_its_ttl() -> None:
    async with standin(session_ttl_s=0.2) as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await client.ws.close(code=4000)
        await asyncio.sleep(0.4)
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False


async def test_expire_session_closes_4009_and_the_session_cannot_be_resumed() -> None:
    async with standin() as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await fake.expire_session()
            assert await client.closed_with() == 4009
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False


@pytest.mark.parametrize("resumable", [True, False])
async def test_op_9_says_whether_the_session_can_be_resumed(resumable: bool) -> None:
    async with standin() as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await fake.invalidate_session(resumable)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is resumable
            await client.ws.close(code=4000)  # not 1000, which would end the session
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            frame = await client.recv()
            if resumable:
                assert frame["t"] == "RESUMED"
            else:
                assert frame["op"] == P.OP_INVALID_SESSION and frame["d"] is False


async def test_a_resume_past_the_replay_buffer_is_op_9_not_a_silent_gap() -> None:
    async with standin(replay_buffer=5) as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await client.ws.close(code=4000)
        await fake.wait_for(lambda f: not f.connected)
        assert fake._session is not None
        for n in range(3):
            await fake._dispatch(fake._session, "TYPING_START", {"n": n})
        async with raw(fake, RESUME_GATEWAY_PATH) as client:  # within the buffer: replayed
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            replayed = [await client.recv() for _ in range(4)]
            assert [f["t"] for f in replayed] == ["TYPING_START"] * 3 + ["RESUMED"]
            seq = replayed[0]["s"] - 1
            await client.ws.close(code=4000)
        await fake.wait_for(lambda f: not f.connected)
        for n in range(6):  # the first of these pushes the earliest unreplayed event out
            await fake._dispatch(fake._session, "TYPING_START", {"n": n})
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False


async def test_resume_with_a_seq_never_sent_is_4007_and_ends_the_session() -> None:
    async with standin() as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await client.ws.close(code=4000)
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, (seq or 0) + 100)
            assert await client.closed_with() == 4007
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False
        assert any("RESUME with seq" in v for v in fake.gateway_violations)


async def test_a_client_closing_with_1000_ends_its_session() -> None:
    async with standin() as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await client.ws.close(code=1000)
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False


async def test_a_session_resumed_elsewhere_closes_the_old_connection_with_4000_not_4009() -> None:
    async with standin() as fake, raw(fake) as first:
        session_id = (await ready(fake, first))["session_id"]
        async with raw(fake, RESUME_GATEWAY_PATH) as second:
            await second.until(P.OP_HELLO)
            await second.resume(fake.token, session_id, first.seq)
            assert (await second.until(P.OP_DISPATCH))["t"] == "RESUMED"
            assert await first.closed_with() == 4000


@pytest.mark.parametrize("code", [4007, 4009])
async def test_drop_gateway_with_a_new_session_code_ends_the_session(code: int) -> None:
    async with standin() as fake:
        async with raw(fake) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await fake.drop_gateway(code)
            assert await client.closed_with() == code
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False


# --- limits -----------------------------------------------------------------------------


async def test_identify_is_limited_to_one_per_5_s_per_bucket() -> None:
    async with standin() as fake:
        async with raw(fake) as client:
            await ready(fake, client)
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify(fake.token)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False
    async with standin(identify_interval_s=0.2) as fake:
        async with raw(fake) as client:
            await ready(fake, client)
        await asyncio.sleep(0.3)
        async with raw(fake) as client:
            await ready(fake, client)
        fake.rate_limit_identify()  # the switch: as if another shard of the bucket identified
        await asyncio.sleep(0.3)
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify(fake.token)
            assert (await client.until(P.OP_INVALID_SESSION))["d"] is False


async def test_session_start_limit_counts_down_resets_and_is_enforced() -> None:
    async def remaining(fake: FakeDiscord, token: str) -> tuple[int, int]:
        url = f"{fake.api_base}/gateway/bot"
        async with aiohttp.ClientSession() as http, http.get(url, headers={"Authorization": f"Bot {token}"}) as resp:
            if resp.status == 401:
                return -1, -1
            limit = (await resp.json())["session_start_limit"]
            return limit["remaining"], limit["reset_after"]

    async with standin(session_start_limit=(1, 0.5), identify_interval_s=0) as fake:
        assert (await remaining(fake, fake.token))[0] == 1
        async with raw(fake) as client:
            await ready(fake, client)
        left, reset_after = await remaining(fake, fake.token)
        assert left == 0 and 0 < reset_after <= 500
        await asyncio.sleep(0.6)
        assert (await remaining(fake, fake.token))[0] == 1, "the limit resets after reset_after"

    async with standin(session_start_limit=(2, 600.0), identify_interval_s=0) as fake:
        token = fake.token
        for left in (1, 0):
            async with raw(fake) as client:
                await ready(fake, client)
            assert (await remaining(fake, token))[0] == left
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify(token)
            assert await client.closed_with() == 4004
        assert fake.token != token, "past the limit Discord resets the token"
        assert await remaining(fake, token) == (-1, -1), "the old token is refused over REST too"


async def test_more_than_120_events_per_window_is_4008() -> None:
    async with standin(send_limit=(5, 10.0)) as fake, raw(fake) as client:
        await ready(fake, client)
        for _ in range(5):
            await client.send(P.OP_HEARTBEAT, client.seq)
        assert await client.closed_with() == 4008
        assert any("more than 5 events" in v for v in fake.gateway_violations)
    async with standin() as fake:
        limit, per = fake.send_limit
        assert limit == 120 and per == pytest.approx(60 * 41250 / 41250), "Discord's default interval: 60 s"
    async with standin(heartbeat_interval_ms=500) as fake:
        assert fake.send_limit == (120, pytest.approx(60 * 500 / 41250)), "scaled with the heartbeat interval"


async def test_a_payload_over_4096_bytes_is_4002() -> None:
    async with standin() as fake, raw(fake) as client:
        await ready(fake, client)
        await client.send(P.OP_PRESENCE_UPDATE, {"status": "online", "activities": [], "pad": "x" * 4096})
        assert await client.closed_with() == 4002
        assert any("byte payload" in v for v in fake.gateway_violations)


# --- close codes ------------------------------------------------------------------------


async def test_invalid_shard_is_4010() -> None:
    async with standin() as fake, raw(fake) as client:
        await client.until(P.OP_HELLO)
        await client.identify(fake.token, shard=[1, 1])
        assert await client.closed_with() == 4010


async def test_sharding_required_is_4011() -> None:
    async with standin(required_shards=2) as fake:
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify(fake.token)
            assert await client.closed_with() == 4011
        fake.identify_interval_s = 0
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify(fake.token, shard=[0, 2])
            assert (await client.until(P.OP_DISPATCH))["t"] == "READY"


async def test_invalid_api_version_is_4012() -> None:
    async with standin() as fake, raw(fake, v="9") as client:
        assert await client.closed_with() == 4012


@pytest.mark.parametrize("intents", [1 << 18, -1, "1", None])
async def test_invalid_intents_are_4013(intents: Any) -> None:
    async with standin() as fake, raw(fake) as client:
        await client.until(P.OP_HELLO)
        await client.identify(fake.token, intents=intents)
        assert await client.closed_with() == 4013


async def test_disallowed_intents_are_4014_and_a_bad_token_4004() -> None:
    async with standin(identify_interval_s=0) as fake:
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify(fake.token, intents=P.INTENT_GUILDS | P.INTENT_MESSAGE_CONTENT)
            assert await client.closed_with() == 4014
        async with raw(fake) as client:
            await client.until(P.OP_HELLO)
            await client.identify("wrong")
            assert await client.closed_with() == 4004


async def test_close_next_identify_switch() -> None:
    async with standin() as fake, raw(fake) as client:
        fake.close_next_identify(4011)
        await client.until(P.OP_HELLO)
        await client.identify(fake.token)
        assert await client.closed_with() == 4011


# --- URLs, and the teardown check ---------------------------------------------------------


async def test_identify_on_the_resume_url_and_resume_on_the_gateway_url_are_violations() -> None:
    async with standin() as fake:
        async with raw(fake, RESUME_GATEWAY_PATH) as client:
            session_id = (await ready(fake, client))["session_id"]
            seq = client.seq
            await client.ws.close(code=4000)
        async with raw(fake, GATEWAY_PATH) as client:
            await client.until(P.OP_HELLO)
            await client.resume(fake.token, session_id, seq)
            assert (await client.until(P.OP_DISPATCH))["t"] == "RESUMED"
    assert [v.split(": ", 1)[1] for v in fake.gateway_violations] == [
        "IDENTIFY on resume_gateway_url instead of the cached gateway URL",
        "RESUME on the gateway URL instead of resume_gateway_url",
    ]


async def test_gateway_violations_fail_the_test_at_teardown_unless_expected() -> None:
    with pytest.raises(AssertionError, match=r"broke 1 documented gateway rule[\s\S]*unknown opcode 99"):
        async with serving(FakeDiscord()) as fake, raw(fake) as client:
            await ready(fake, client)
            await client.send(99, None)
            assert await client.closed_with() == 4001


# --- which guilds READY lists -----------------------------------------------------------------


async def _ready_guilds(fake: FakeDiscord, **identify: Any) -> list[str]:
    async with raw(fake) as client:
        await client.until(P.OP_HELLO)
        await client.identify(fake.token, **identify)
        frame = await client.until(P.OP_DISPATCH)
        assert frame["t"] == "READY"
        return [guild["id"] for guild in frame["d"]["guilds"]]


async def test_ready_lists_a_guild_only_on_its_shard_and_not_once_the_bot_was_removed() -> None:
    async with standin(identify_interval_s=0.0) as fake:  # three IDENTIFYs in a row
        home = (fake.guild_id >> 22) % 2  # G "Sharding": shard_id = (guild_id >> 22) % num_shards
        assert await _ready_guilds(fake, shard=[home, 2]) == [str(fake.guild_id)]
        assert await _ready_guilds(fake, shard=[1 - home, 2]) == []
        fake.bot_in_guild = False
        assert await _ready_guilds(fake) == []
