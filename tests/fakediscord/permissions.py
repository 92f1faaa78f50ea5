"""Permissions of a member in a channel, computed as Discord's docs say.

docs: topics/permissions.mdx "Permission Hierarchy" and its pseudocode
(`compute_base_permissions`, `compute_overwrites`): the guild owner and ADMINISTRATOR
have everything; otherwise @everyone's permissions OR the member's roles', then the
channel's @everyone overwrite, then all the member's role overwrites together (deny
then allow), then the member's own overwrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
#: Every permission bit the docs define (topics/permissions.mdx "Bitwise Permission Flags", up to 1 << 50).
ALL = (1 << 51) - 1
OVERWRITE_ROLE = 0
OVERWRITE_MEMBER = 1


def base_permissions(
    guild_id: int, owner_id: int, roles: Mapping[int, int], user_id: int, member_roles: Iterable[int]
) -> int:
    """`compute_base_permissions`: `roles` maps role id (the guild id is @everyone) to its permissions."""
    if user_id == owner_id:
        return ALL
    permissions = roles.get(guild_id, 0)
    for role in member_roles:
        permissions |= roles.get(int(role), 0)
    if permissions & ADMINISTRATOR:
        return ALL
    return permissions


def channel_permissions(
    base: int, guild_id: int, user_id: int, member_roles: Iterable[int], overwrites: Iterable[dict[str, Any]]
) -> int:
    """`compute_overwrites`: `overwrites` as in a channel object (`id`, `type`, `allow`, `deny`)."""
    if base & ADMINISTRATOR:
        return ALL
    by_id = {int(o["id"]): o for o in overwrites}
    permissions = base
    everyone = by_id.get(guild_id)
    if everyone is not None:
        permissions &= ~int(everyone["deny"])
        permissions |= int(everyone["allow"])
    allow = deny = 0
    for role in member_roles:
        overwrite = by_id.get(int(role))
        if overwrite is not None and int(overwrite["type"]) == OVERWRITE_ROLE:
            allow |= int(overwrite["allow"])
            deny |= int(overwrite["deny"])
    permissions &= ~deny
    permissions |= allow
    member = by_id.get(user_id)
    if member is not None and int(member["type"]) == OVERWRITE_MEMBER:
        permissions &= ~int(member["deny"])
        permissions |= int(member["allow"])
    return permissions


def overwrite(target_id: int, kind: int, *, allow: int = 0, deny: int = 0) -> dict[str, Any]:
    """A permission overwrite object (resources/channel.mdx "Overwrite Object"; allow/deny are strings)."""
    return {"id": str(target_id), "type": kind, "allow": str(allow), "deny": str(deny)}
