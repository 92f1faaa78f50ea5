"""Pytest glue for FakeDiscord: the ``fake`` fixture and a helper that runs a real discord.py client.

The project's conftest imports the fixture (``from tests.fakediscord.fixtures import
fake``). It runs on pytest-asyncio's default *fixture* loop, so that
must be the loop the tests run on (pyproject sets both default loop scopes to
"session"): a server on a loop that is idle during the test would never answer, and
FakeDiscord raises a clear error instead of hanging if that happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from .server import FakeDiscord

if TYPE_CHECKING:
    import discord

# Short enough that a test sees several heartbeats within a second or two.
TEST_HEARTBEAT_MS = 500
#: Discord's deadline for the first response to an interaction.
ACK_DEADLINE_S = 3.0


@pytest_asyncio.fixture(loop_scope="session")
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeDiscord]:
    """A fresh Discord stand-in per test, with discord.py pointed at it; torn down after the test.

    Parametrize indirectly with a heartbeat interval in ms to change it. Late
    acknowledgements (over Discord's 3 s) fail as they would on Discord. At teardown
    the test fails if any request the client sent was refused for breaking Discord's
    documented rules, unless the test called ``fake.expect_rejections()``.
    """
    interval = getattr(request, "param", TEST_HEARTBEAT_MS)
    async with serving(FakeDiscord(heartbeat_interval_ms=interval, ack_deadline=ACK_DEADLINE_S)) as server:
        yield server


@contextlib.asynccontextmanager
async def serving(fake: FakeDiscord) -> AsyncIterator[FakeDiscord]:
    """Start ``fake``, point discord.py at it, and stop it afterwards.

    On a clean exit it then fails (``AssertionError``) if "Discord" refused any request for
    its body (``FakeDiscord.check_rejections``) and the test did not call
    ``fake.expect_rejections()``: a refused reply must never go unnoticed; likewise for
    the client breaking a gateway rule (``check_gateway_violations``).
    """
    await fake.start()
    try:
        with fake.patch_discord():
            yield fake
    finally:
        await fake.close()
    fake.check_rejections()
    fake.check_gateway_violations()


@contextlib.asynccontextmanager
async def running_client(
    client: discord.Client,
    fake: FakeDiscord,
    *,
    token: str | None = None,
    timeout: float = 10,  # noqa: ASYNC109
    wait_ready: bool = True,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``client.start()`` as a task; on exit close it and wait for the task to end.

    With ``wait_ready`` it returns once the fake has sent READY (+GUILD_CREATE), or
    raises the client's own error (e.g. ``discord.LoginFailure``) if it died first.
    Closing through ``client.close()`` lets discord.py stop its heartbeat thread and
    HTTP session itself; discord.py tasks still pending afterwards are cancelled, so
    nothing leaks into later tests sharing the event loop.
    """
    task: asyncio.Task[None] = asyncio.create_task(
        client.start(token if token is not None else fake.token), name="discord-client"
    )
    body_failed = False
    try:
        if wait_ready:
            ready = asyncio.create_task(fake.wait_until_ready(timeout))
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                with contextlib.suppress(BaseException):
                    await ready
                task.result()  # re-raises the client's error
                raise RuntimeError("discord client stopped before READY")
            ready.result()
        yield task
    except BaseException:
        body_failed = True
        raise
    finally:
        # discord.py waits guild_ready_timeout (2 s by default) after the last
        # GUILD_CREATE before dispatching on_ready. A test that is already done by then
        # would have on_ready dispatched into the closed client (loop reset to MISSING:
        # "coroutine 'Client._run_event' was never awaited"); cancelling the delay task
        # is what discord.py itself does when a new READY supersedes it.
        ready_task: asyncio.Task[None] | None = getattr(getattr(client, "_connection", None), "_ready_task", None)
        if ready_task is not None and not ready_task.done():
            ready_task.cancel()
        if not client.is_closed():
            await client.close()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        elif not task.cancelled():
            exc = task.exception()  # retrieved either way: no "never retrieved" warning
            if exc is not None and not body_failed:
                raise exc
        await cancel_discord_tasks()


async def cancel_discord_tasks() -> None:
    """Cancel tasks running discord.py code that outlived ``client.close()``."""
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done() and _is_discord_task(t)]
    for t in leftover:
        t.cancel()
    if leftover:
        await asyncio.wait(leftover, timeout=2)


def _is_discord_task(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    filename = getattr(code, "co_filename", "")
    return f"{os.sep}discord{os.sep}" in filename
