"""`/labels save|list|show|delete` and `/forget-me`: named label sets, and deleting your data.

A preset is personal (yours, usable anywhere) or the server's (managed by members
with Manage Server, usable by everyone there). Use one as `@name` wherever labels
are typed. Every answer is private (ephemeral) and immediate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.interactions import check_manages_server
from bot.discord.replies import COLOUR, escape, index_erasure_line
from bot.errors import LabelError
from bot.labels import clean_text, parse_labels, parse_template
from bot.storage.presets import Preset, Scope, check_name

if TYPE_CHECKING:
    from bot.discord.client import ClipBot

ScopeChoice = Literal["personal", "server"]


def _scope(choice: ScopeChoice) -> Scope:
    return "guild" if choice == "server" else "user"


def _where(preset: Preset) -> str:
    return "server" if preset.scope == "guild" else "personal"


class PresetCommands(commands.Cog):
    """Label presets and `/forget-me`."""

    labels = app_commands.Group(name="labels", description="Named label sets: use them as @name in /classify")

    def __init__(self, bot: ClipBot) -> None:
        self.bot = bot
        self.store = bot.presets

    def _owner(self, interaction: discord.Interaction, scope: Scope) -> int:
        """The owner id of a scope here, or a one-line error where it makes no sense."""
        if scope == "user":
            return interaction.user.id
        if interaction.guild_id is None:
            raise LabelError("Server presets exist only in a server; this one would be `personal`.")
        return interaction.guild_id

    def _check_may_change(self, interaction: discord.Interaction, scope: Scope) -> None:
        """Server presets are changed by members with Manage Server (personal ones by anyone)."""
        if scope == "guild":
            check_manages_server(interaction)

    @labels.command(name="save", description="Save a label set under a name (replaces one of that name)")
    @app_commands.describe(
        name="Short name, e.g. animals (then type @animals in labels)",
        labels="Comma-separated labels, e.g. cat, dog, fox",
        scope="personal (yours, anywhere) or server (everyone here; needs Manage Server)",
    )
    async def save(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 33],
        labels: app_commands.Range[str, 1, 4000],
        scope: ScopeChoice = "personal",
    ) -> None:
        where = _scope(scope)
        owner = self._owner(interaction, where)
        self._check_may_change(interaction, where)
        clean_name = check_name(name)
        parsed = parse_labels(labels, min_count=1, max_count=self.bot.settings.max_labels)
        created = await self.store.save(where, owner, clean_name, parsed, by=interaction.user.id)
        verb = "Saved" if created else "Replaced"
        await interaction.response.send_message(
            f"{verb} {scope} preset `@{clean_name}` with {len(parsed)} labels: {escape(', '.join(parsed), 1500)}",
            ephemeral=True,
        )

    @labels.command(name="list", description="Your presets and this server's")
    async def list_presets(self, interaction: discord.Interaction) -> None:
        mine = await self.store.owned("user", interaction.user.id)
        server = await self.store.owned("guild", interaction.guild_id) if interaction.guild_id else []
        embed = discord.Embed(title="Label presets", colour=COLOUR)
        for title, presets in (("Yours", mine), ("This server's", server)):
            if interaction.guild_id is None and title != "Yours":
                continue
            lines = [f"`@{p.name}` · {len(p.labels)} labels: {escape(p.label_text, 60)}" for p in presets[:25]]
            more = f"\n…and {len(presets) - 25} more" if len(presets) > 25 else ""
            value = ("\n".join(lines) + more) if lines else "none yet (`/labels save`)"
            embed.add_field(name=title, value=value[:1024], inline=False)
        embed.set_footer(text="Use one as @name in /classify labels, alone or with other labels")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @labels.command(name="show", description="The labels of a preset")
    @app_commands.describe(name="The preset's name")
    async def show(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 33]) -> None:
        preset = await self.store.resolve(check_name(name), interaction.user.id, interaction.guild_id)
        if preset is None:
            raise LabelError(f"There is no preset named `@{check_name(name)}` here; `/labels list` shows them.")
        await interaction.response.send_message(
            f"`@{preset.name}` ({_where(preset)}, {len(preset.labels)} labels): {escape(preset.label_text, 1800)}",
            ephemeral=True,
        )

    @labels.command(name="delete", description="Delete a preset")
    @app_commands.describe(name="The preset's name", scope="personal or server (needs Manage Server)")
    async def delete(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 33],
        scope: ScopeChoice = "personal",
    ) -> None:
        where = _scope(scope)
        owner = self._owner(interaction, where)
        self._check_may_change(interaction, where)
        clean_name = check_name(name)
        if not await self.store.delete(where, owner, clean_name):
            raise LabelError(f"There is no {scope} preset named `@{clean_name}`.")
        await interaction.response.send_message(f"Deleted {scope} preset `@{clean_name}`.", ephemeral=True)

    @labels.command(name="defaults", description="This server's default template and preset (Manage Server)")
    @app_commands.describe(
        template='Template for /classify when none is given: with {}, "none" or "ensemble"',
        preset="Server preset offered in the Classify image form to people with no recent labels here",
        clear="Go back to the bot's defaults",
    )
    async def defaults(
        self,
        interaction: discord.Interaction,
        template: app_commands.Range[str, 1, 300] | None = None,
        preset: app_commands.Range[str, 1, 33] | None = None,
        clear: bool = False,
    ) -> None:
        guild_id = self._owner(interaction, "guild")
        current_template, current_preset = await self.store.guild_defaults(guild_id)
        if clear or template is not None or preset is not None:
            self._check_may_change(interaction, "guild")
            if clear:
                current_template = current_preset = None
            if template is not None:
                parse_template(template, self.bot.settings.clip_default_template)  # a one-line error if unusable
                current_template = clean_text(template)
            if preset is not None:
                name = check_name(preset)
                if await self.store.get("guild", guild_id, name) is None:
                    raise LabelError(f"This server has no preset named `@{name}` (`/labels save … scope:server`).")
                current_preset = name
            await self.store.set_guild_defaults(guild_id, template=current_template, preset=current_preset)
        shown_template = escape(current_template, 300) if current_template else "the bot's"
        shown_preset = f"`@{current_preset}`" if current_preset else "none"
        await interaction.response.send_message(
            f"This server's defaults: template {shown_template}; preset {shown_preset}.", ephemeral=True
        )

    @app_commands.command(name="forget-me", description="Delete everything this bot stores about you")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        # Deferred: the image index may have to open first, and its deletion scans every server.
        await interaction.response.defer(ephemeral=True, thinking=True)
        removed = await self.store.forget_user(interaction.user.id)
        counts = ", ".join(f"{count} {what}" for what, count in removed.items())
        index = await self.bot.services.search.forget_author(interaction.user.id)
        await interaction.edit_original_response(
            content=f"Deleted {counts}. Images sent to commands are never stored. {index_erasure_line(index)} "
            "Server presets you saved belong to the server."
        )

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left a server (or it was deleted): its presets go."""
        await self.store.forget_guild(guild.id)


async def setup(bot: ClipBot) -> None:
    await bot.add_cog(PresetCommands(bot))
