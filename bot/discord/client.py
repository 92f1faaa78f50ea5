"""The Discord client: setup, command sync, central error handling, start-up.

`python -m bot run` calls `run_bot`; the end-to-end tests build the same bot
with `create_bot` and drive it with `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.discord.admission import Admission, DownloadBudget
from bot.discord.failures import failure_for, reply_error
from bot.discord.gateway import (
    FATAL_CLOSE_CODES,
    ZombieWatchdog,
    fatal_close_message,
    install_documented_gateway,
    privileged_intents_message,
    token_rejected_message,
)
from bot.discord.interactions import admit
from bot.discord.replies import error_text
from bot.errors import ConfigError, RateLimitedError, StartupError
from bot.metrics import BotMetrics, MetricsServer, Probes
from bot.services import Services, create_services
from bot.stats import UsageStats

if TYPE_CHECKING:
    from bot.engine import ClipEngine

log = logging.getLogger(__name__)

#: Feature modules, loaded by name in `setup_hook` (each has `async def setup(bot)`).
EXTENSIONS = (
    "bot.discord.exts.clip_commands",
    "bot.discord.exts.message_classify",
    "bot.discord.exts.presets",
    "bot.discord.exts.info",
    "bot.discord.exts.search",
    "bot.discord.exts.autotag",
)

CLI_HINT = 'To try CLIP without Discord: python -m bot classify IMAGE --labels "cat, dog"'


RESTARTING = "I'm restarting; please try again in a minute."
CUT_BY_RESTART = "The bot restarted before your answer was ready. Please try again in a minute."


class DrainingTree(app_commands.CommandTree["ClipBot"]):
    """Knows every interaction in progress, so a shutdown can let them finish.

    `interaction_check` runs inside the task discord.py creates for each interaction
    (command, error handler and all), so that task is what a shutdown waits for.
    """

    async def interaction_check(self, interaction: discord.Interaction[ClipBot], /) -> bool:
        bot = self.client
        if bot.draining:
            if interaction.type is discord.InteractionType.application_command:
                bot.metrics.requests.labels(_command_name(interaction), "restarting").inc()
                await interaction.response.send_message(error_text(RESTARTING), ephemeral=True)
            return False
        bot.track(interaction)
        if interaction.type is discord.InteractionType.application_command:
            try:
                admit(bot, interaction)
            except RateLimitedError as refused:
                await bot.report_failure(interaction, refused, _command_name(interaction))
                return False
        return True

    async def on_error(self, interaction: discord.Interaction[ClipBot], error: app_commands.AppCommandError, /) -> None:
        await self.client.on_app_command_error(interaction, error)


class ClipBot(commands.Bot):
    """A slash-command-only bot that never pings anyone."""

    def __init__(self, settings: Settings, engine: ClipEngine | None = None, services: Services | None = None) -> None:
        """`services`: built by the caller, who closes them; else the bot builds its own (around
        `engine` if given, which the bot then does not close either) and closes them."""
        intents = discord.Intents.none()
        intents.guilds = True  # interaction.guild and permissions; nothing privileged
        sharding: dict[str, Any] = {}
        if settings.shard_count is not None:  # only `ShardedClipBot` (AutoShardedClient) takes these
            sharding = {"shard_count": settings.shard_count, "shard_ids": settings.shard_ids}
        intents.guild_messages = True  # new, edited and deleted messages, for /index (not privileged)
        # Server emojis (not privileged): /autotag checks that a label's server emoji is one it can use.
        intents.emojis_and_stickers = True
        # Privileged (Developer Portal): without it Discord sends no attachments of ordinary messages.
        intents.message_content = settings.message_content_intent
        super().__init__(
            **sharding,
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            tree_cls=DrainingTree,
            # Usable wherever a user is: installed to a server or to a user's account, in
            # servers, in DMs with the bot and in group DMs (global commands only; Discord
            # ignores these for guild-synced commands).
            allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
            allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
        )
        self.settings = settings
        self._owns_services = services is None
        self.services = services or create_services(settings, engine=engine)
        self.engine = self.services.engine
        self.service = self.services.clip
        self.presets = self.services.presets
        self.stats = UsageStats()
        #: Per person: rate and requests in flight (`bot.discord.admission`), nobody exempt.
        self.admission = Admission(
            cooldown_s=settings.user_cooldown_s, burst=settings.user_burst, max_in_flight=settings.user_max_in_flight
        )
        #: Bytes of images all requests in progress may hold (`interactions.download`).
        self.download_budget = DownloadBudget(settings.download_budget_mb << 20)
        self.metrics = BotMetrics(
            Probes(
                queue_depth=lambda: self.service.pending,
                gateway_latency_s=lambda: self.latency,
                text_cache_lookups=lambda: self.engine.text_lookups,
                text_cache_misses=lambda: self.engine.text_cache_misses,
                ready={
                    "model": lambda: self.engine.info is not None and self.engine.load_error is None,
                    "gateway": lambda: self.is_ready() and not self.is_closed() and not self.draining,
                    "backend": self._backend_ready,
                },
            )
        )
        self.engine.observe_batches(self.metrics.observe_batch)
        self.metrics_server: MetricsServer | None = None
        self._connections = 0
        self.http_session: aiohttp.ClientSession = None  # type: ignore[assignment]  # set in setup_hook
        self.synced_commands: list[app_commands.AppCommand] = []
        self._model_task: asyncio.Task[None] | None = None
        #: Interactions being served, by the task serving each (see `DrainingTree`).
        self.in_flight: dict[asyncio.Task[object], discord.Interaction] = {}
        #: Set by `shutdown`: new interactions are turned away.
        self.draining = False
        install_documented_gateway()
        self.watchdog = ZombieWatchdog(self)
        self._watchdog_task: asyncio.Task[None] | None = None

    async def _backend_ready(self) -> bool:
        """The engine can serve: the local model is loaded, or some inference server answers."""
        return await self.engine.problem() is None

    async def setup_hook(self) -> None:
        """Once per process: HTTP session, cog, model load, command sync."""
        self.http_session = aiohttp.ClientSession()
        await self.services.start()  # creates or migrates the database's schema
        if self.settings.metrics_port is not None:
            self.metrics_server = MetricsServer(self.metrics, self.settings.metrics_host, self.settings.metrics_port)
            await self.metrics_server.start()
        loop = asyncio.get_running_loop()
        self._model_task = loop.create_task(self._load_model(), name="clip-load")
        self._watchdog_task = loop.create_task(self.watchdog.run(), name="gateway-watchdog")
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()

    async def _load_model(self) -> None:
        """Load CLIP while the gateway connects; if it cannot load, stop the bot.

        `serve` then turns `engine.load_error` into the one-line start-up error.
        """
        try:
            info = await self.engine.start()
        except Exception:
            log.critical("CLIP failed to load; shutting down")
            await self.close()
        else:
            self.metrics.model_loaded(info.model, info.device, info.load_s)

    async def sync_commands(self) -> None:
        """Guild sync (instant) when DISCORD_GUILD_ID is set, else global."""
        guild_id = self.settings.discord_guild_id
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced_commands = await self.tree.sync(guild=guild)
            where = f"guild {guild_id}"
        else:
            self.synced_commands = await self.tree.sync()
            where = "all guilds (global; may take up to an hour to appear)"
        log.info("Synced %d commands to %s", len(self.synced_commands), where)

    async def on_connect(self) -> None:
        self._connections += 1
        if self._connections > 1:  # a new session after a lost one
            self.metrics.gateway_reconnects.inc()

    async def on_resumed(self) -> None:
        self.metrics.gateway_reconnects.inc()

    async def on_ready(self) -> None:
        log.info("Logged in as %s (id %s) in %d guilds", self.user, self.user and self.user.id, len(self.guilds))

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Every command's failure goes to `report_failure` (called by `DrainingTree.on_error`)."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await self.report_failure(interaction, cause, _command_name(interaction))

    def track(self, interaction: discord.Interaction) -> None:
        """Count the current task as serving `interaction`, for a graceful shutdown.

        App commands are tracked by `DrainingTree`; modal submissions call this.
        """
        task = asyncio.current_task()
        if task is not None:
            self.in_flight[task] = interaction
            task.add_done_callback(lambda done: self.in_flight.pop(done, None))

    async def report_failure(self, interaction: discord.Interaction, cause: BaseException, command: str) -> None:
        """One place turns every failure (commands and modals) into one clear reply (`FAILURES`)."""
        failure = failure_for(cause)
        self.metrics.requests.labels(command, failure.outcome).inc()
        failure.log(cause, command)
        await reply_error(interaction, failure.reply(cause, interaction))

    async def shutdown(self) -> None:
        """Graceful stop (SIGTERM/SIGINT): refuse new interactions, let those in flight
        finish for up to `SHUTDOWN_GRACE_S`, tell the rest to retry, then close.

        Every interaction accepted before the signal gets exactly one final reply.
        """
        if self.draining:
            return
        self.draining = True
        grace = self.settings.shutdown_grace_s
        pending = set(self.in_flight)
        log.info("Shutting down: %d requests in flight, waiting up to %g s for them", len(pending), grace)
        if pending:
            _, unfinished = await asyncio.wait(pending, timeout=grace)
            if unfinished:
                log.warning("%d requests did not finish in %g s; telling them to retry", len(unfinished), grace)
                interactions = [self.in_flight[task] for task in unfinished if task in self.in_flight]
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
                await asyncio.gather(*(reply_error(i, CUT_BY_RESTART) for i in interactions))
        await self.close()

    async def close(self) -> None:
        await super().close()
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.http_session is not None:
            await self.http_session.close()
        if self._owns_services:  # services handed in are closed by whoever built them
            await self.services.aclose()


def _command_name(interaction: discord.Interaction) -> str:
    return interaction.command.name if interaction.command else "?"


class ShardedClipBot(ClipBot, commands.AutoShardedBot):
    """`ClipBot` on `discord.AutoShardedClient`: `SHARD_COUNT` shards in all, `SHARD_IDS` in this process.

    Nothing is shared in memory between shards of different processes; the database and
    the inference servers are (README, Sharding).
    """


def create_bot(settings: Settings, engine: ClipEngine | None = None, services: Services | None = None) -> ClipBot:
    """The production bot (also what the end-to-end tests run); sharded when `SHARD_COUNT` is set."""
    if settings.shard_count is not None:
        return ShardedClipBot(settings, engine, services)
    return ClipBot(settings, engine, services)


def require_token(settings: Settings) -> str:
    """The bot token, or a one-line `StartupError` saying how to set it."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        raise ConfigError("DISCORD_TOKEN is not set (put it in .env or the environment; see README). " + CLI_HINT)
    return token


async def serve(bot: ClipBot) -> None:
    """Log in and run until closed; start-up problems become a `StartupError`.

    Failures a restart cannot fix (a rejected token, the gateway's fatal close codes)
    are a `ConfigError`, whether at start-up or weeks later (a token reset).
    """
    token = require_token(bot.settings)
    async with bot:
        try:
            await bot.start(token)
        except discord.LoginFailure:
            raise ConfigError(token_rejected_message() + " " + CLI_HINT) from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(privileged_intents_message(bot.intents)) from None
        except discord.ConnectionClosed as exc:
            if exc.code not in FATAL_CLOSE_CODES:
                raise
            raise ConfigError(fatal_close_message(exc.code, bot.intents)) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise StartupError(f"Cannot reach Discord ({type(exc).__name__}); check the network.") from None
    error = bot.engine.load_error
    if error is not None:
        raise error if isinstance(error, StartupError) else StartupError(f"CLIP failed to load: {error}")


def install_signal_handlers(bot: ClipBot) -> list[signal.Signals]:
    """SIGTERM/SIGINT start a graceful shutdown; a second one closes at once.

    Returns the signals handled (none where the loop cannot, e.g. on Windows).
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()  # keep a reference until each is done

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s received", sig.name)
        task = loop.create_task(bot.close() if bot.draining else bot.shutdown())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
            handled.append(sig)
    return handled


def run_bot(settings: Settings) -> int:
    """Entry point of `python -m bot run`."""

    require_token(settings)  # before building anything

    async def main() -> None:
        bot = create_bot(settings)
        install_signal_handlers(bot)
        await serve(bot)

    asyncio.run(main())
    return 0
