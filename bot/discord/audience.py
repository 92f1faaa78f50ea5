"""Whether everyone who can view one channel can also read another's history: who a repost alert may link.

A repost alert is posted where the new image is, so whoever can view that channel reads it;
it may link an earlier message only if every one of them can also view that message's
channel and read its history. Members are not enumerated (that needs the privileged
members intent and goes stale): instead every kind of member the server's roles and
overwrites allow is checked, with the permission pseudocode of Discord's docs
(topics/permissions.mdx, `compute_base_permissions` and `compute_overwrites`), the same
rules `channel.permissions_for` applies for /search.

Only the bits that matter (ADMINISTRATOR, VIEW_CHANNEL, READ_MESSAGE_HISTORY) are kept, and
roles that set them the same way in both channels are one "kind", so every combination of
roles a member could hold is tried; members with an overwrite of their own in either channel
are tried with it, with any roles. Too many combinations: the answer is no (say nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
READ_MESSAGE_HISTORY = 1 << 16
CHANNEL_BITS = VIEW_CHANNEL | READ_MESSAGE_HISTORY
BASE_BITS = ADMINISTRATOR | CHANNEL_BITS
#: Most role-and-member combinations tried before answering "no".
MAX_COMBINATIONS = 1 << 12


@dataclass(frozen=True, slots=True)
class Rule:
    """An overwrite's (allow, deny) bits that matter; (0, 0) when there is none."""

    allow: int = 0
    deny: int = 0


@dataclass(frozen=True, slots=True)
class RoleKind:
    """A role as far as two channels are concerned: its base bits and its overwrite in each."""

    base: int
    first: Rule
    second: Rule


@dataclass(frozen=True, slots=True)
class Channels:
    """What the permission pseudocode needs of two channels in one server (bits that matter only)."""

    everyone_base: int
    everyone_first: Rule
    everyone_second: Rule
    roles: frozenset[RoleKind]
    #: Members' own overwrites (first channel, second channel), by member id.
    members: tuple[tuple[Rule, Rule], ...]


def permissions(base: int, everyone: Rule, roles: Iterable[Rule], member: Rule) -> int:
    """`compute_overwrites` of the docs on the bits kept: @everyone's overwrite, then all the
    member's role overwrites together (deny, then allow), then the member's own."""
    if base & ADMINISTRATOR:
        return BASE_BITS
    allowed = (base & ~everyone.deny) | everyone.allow
    role_allow = role_deny = 0
    for rule in roles:
        role_allow |= rule.allow
        role_deny |= rule.deny
    allowed = (allowed & ~role_deny) | role_allow
    return (allowed & ~member.deny) | member.allow


def sees(bits: int) -> bool:
    return bool(bits & VIEW_CHANNEL)


def reads(bits: int) -> bool:
    return bits & CHANNEL_BITS == CHANNEL_BITS


def audience_can_read(channels: Channels) -> bool:
    """Every member who can view the first channel can view the second and read its history."""
    kinds = [kind for kind in channels.roles if kind != RoleKind(0, Rule(), Rule())]
    members = [(Rule(), Rule()), *channels.members]
    if (1 << len(kinds)) * len(members) > MAX_COMBINATIONS:
        return False
    for first_own, second_own in members:
        for subset in range(1 << len(kinds)):
            held = [kind for i, kind in enumerate(kinds) if subset >> i & 1]
            base = channels.everyone_base
            for kind in held:
                base |= kind.base
            first = permissions(base, channels.everyone_first, (k.first for k in held), first_own)
            if not sees(first):
                continue
            second = permissions(base, channels.everyone_second, (k.second for k in held), second_own)
            if not reads(second):
                return False
    return True


def _rule(channel: discord.abc.GuildChannel, target: discord.Role | discord.abc.Snowflake) -> Rule:
    allow, deny = channel.overwrites_for(target).pair()  # type: ignore[arg-type]
    return Rule(allow.value & CHANNEL_BITS, deny.value & CHANNEL_BITS)


def two_channels(first: discord.abc.GuildChannel, second: discord.abc.GuildChannel) -> Channels:
    """The bits of `first` and `second` (one server's) that decide who views and reads them."""
    guild = first.guild
    everyone = guild.default_role
    roles = frozenset(
        RoleKind(role.permissions.value & BASE_BITS, _rule(first, role), _rule(second, role))
        for role in guild.roles
        if role != everyone
    )
    role_ids = {role.id for role in guild.roles}
    member_ids = {
        target.id
        for channel in (first, second)
        for target in channel.overwrites
        if target.id not in role_ids and not isinstance(target, discord.Role)
    }
    members = tuple(
        (_rule(first, discord.Object(member_id)), _rule(second, discord.Object(member_id)))
        for member_id in sorted(member_ids)
    )
    return Channels(
        everyone_base=everyone.permissions.value & BASE_BITS,
        everyone_first=_rule(first, everyone),
        everyone_second=_rule(second, everyone),
        roles=roles,
        members=members,
    )


def members_of_first_can_read_second(first: discord.abc.GuildChannel, second: discord.abc.GuildChannel) -> bool:
    """Whoever can view `first` can view `second` and read its history (see the module's docstring)."""
    return audience_can_read(two_channels(first, second))
