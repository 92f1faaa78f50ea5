"""Discord API v10 object shapes and the request checks Discord itself applies.

The shapes follow discord/discord-api-docs and what discord.py 2.7 reads: keys it
indexes directly (``data['x']``) must be present or the client crashes while parsing,
so each builder fills those in even where Discord would too.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from typing import Any

DISCORD_EPOCH_MS = 1420070400000

# Gateway opcodes (docs: topics/opcodes-and-status-codes).
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE_UPDATE = 3
OP_VOICE_STATE_UPDATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_GUILD_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

# Gateway close codes Discord uses for client mistakes.
CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_DISALLOWED_INTENTS = 4014

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7

# Application command option types (docs: interactions/application-commands).
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11

# Everything except ADMINISTRATOR: what a bot typically holds in a test guild.
ALL_PERMISSIONS = str((1 << 51) - 1 & ~(1 << 3))
#: An ordinary member: view channel, send messages, embed links, use application commands.
MEMBER_PERMISSIONS = str((1 << 10) | (1 << 11) | (1 << 14) | (1 << 31))
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # bytes; non-boosted guilds since 2024

_snowflake_counter = itertools.count()


def snowflake() -> int:
    """A fresh, increasing snowflake dated now, so ``created_at`` looks sane."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (1 << 17) | (next(_snowflake_counter) & 0xFFF)


def iso_now() -> str:
    """Discord's ISO-8601 timestamp format."""
    return dt.datetime.now(dt.UTC).isoformat()


def error_body(code: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """Discord's JSON error shape (docs: topics/opcodes-and-status-codes#json)."""
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return body


def user_object(user_id: int, username: str, *, bot: bool = False) -> dict[str, Any]:
    """A user object with the keys discord.py indexes directly."""
    return {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": None if bot else username.title(),
        "avatar": None,
        "bot": bot,
        "system": False,
        "mfa_enabled": False,
        "banner": None,
        "accent_color": None,
        "locale": "en-US",
        "verified": True,
        "flags": 0,
        "public_flags": 0,
    }


def member_object(
    user: dict[str, Any], *, roles: list[int] | None = None, permissions: str | None = None
) -> dict[str, Any]:
    """A guild member; ``permissions`` is only set on interaction payloads."""
    member: dict[str, Any] = {
        "user": user,
        "nick": None,
        "avatar": None,
        "roles": [str(r) for r in roles or []],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        member["permissions"] = permissions
    return member


def text_channel_object(channel_id: int, guild_id: int, name: str = "general") -> dict[str, Any]:
    """A GUILD_TEXT channel (type 0)."""
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": None,
        "flags": 0,
    }


def everyone_role(guild_id: int) -> dict[str, Any]:
    """The @everyone role, whose id is the guild id."""
    return {
        "id": str(guild_id),
        "name": "@everyone",
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": 0,
        "permissions": "1071698660929",
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild_create_object(guild_id: int, channel: dict[str, Any], bot_member: dict[str, Any]) -> dict[str, Any]:
    """The GUILD_CREATE payload: a guild plus the gateway-only extra fields."""
    return {
        "id": str(guild_id),
        "name": "Fake Guild",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": "1",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [everyone_role(guild_id)],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        # Gateway-only fields.
        "joined_at": "2024-01-01T00:00:00+00:00",
        "large": False,
        "unavailable": False,
        "member_count": 2,
        "voice_states": [],
        "members": [bot_member],
        "channels": [channel],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def application_object(app_id: int, owner: dict[str, Any]) -> dict[str, Any]:
    """``GET /oauth2/applications/@me``; no interactions endpoint URL, so events come
    over the gateway (discord.py warns otherwise)."""
    return {
        "id": str(app_id),
        "name": "clipbot-test",
        "icon": None,
        "description": "",
        "rpc_origins": [],
        "bot_public": False,
        "bot_require_code_grant": False,
        "bot": owner | {"bot": True},
        "owner": owner,
        "team": None,
        "verify_key": "0" * 64,
        "flags": 0,
        "tags": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "approximate_guild_count": 1,
        "integration_types_config": {"0": {}},
    }


def attachment_object(
    *,
    attachment_id: int,
    filename: str,
    size: int,
    url: str,
    proxy_url: str,
    content_type: str | None,
    width: int | None,
    height: int | None,
    ephemeral: bool = False,
) -> dict[str, Any]:
    """An attachment object (docs: resources/message#attachment-object)."""
    obj: dict[str, Any] = {
        "id": str(attachment_id),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": proxy_url,
        "ephemeral": ephemeral,
    }
    if content_type is not None:
        obj["content_type"] = content_type
    if width is not None and height is not None:
        obj["width"] = width
        obj["height"] = height
    return obj


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height if the bytes are an image Pillow can read (Discord sets both)."""
    try:
        import io

        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a project dependency
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


# --- request checks --------------------------------------------------------------

_NAME_RE = re.compile(r"^[-_\w]{1,32}$")


def _err(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _set_error(errors: dict[str, Any], path: list[str], value: dict[str, Any]) -> None:
    node = errors
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def validate_message(data: dict[str, Any], prefix: list[str]) -> dict[str, Any]:
    """Limits Discord enforces on message bodies; returns Discord's nested ``errors``."""
    errors: dict[str, Any] = {}
    content = data.get("content")
    if isinstance(content, str) and len(content) > 2000:
        _set_error(
            errors,
            [*prefix, "content"],
            _err("BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."),
        )
    embeds = data.get("embeds") or []
    if len(embeds) > 10:
        _set_error(
            errors,
            [*prefix, "embeds"],
            _err("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."),
        )
    total = 0
    limits = {"title": 256, "description": 4096}
    for i, embed in enumerate(embeds):
        for key, limit in limits.items():
            text = embed.get(key) or ""
            total += len(text)
            if len(text) > limit:
                _set_error(
                    errors,
                    [*prefix, "embeds", str(i), key],
                    _err("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."),
                )
        fields = embed.get("fields") or []
        if len(fields) > 25:
            _set_error(
                errors,
                [*prefix, "embeds", str(i), "fields"],
                _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."),
            )
        for j, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = fld.get(key) or ""
                total += len(text)
                if not text:
                    _set_error(
                        errors,
                        [*prefix, "embeds", str(i), "fields", str(j), key],
                        _err("BASE_TYPE_REQUIRED", "This field is required"),
                    )
                elif len(text) > limit:
                    _set_error(
                        errors,
                        [*prefix, "embeds", str(i), "fields", str(j), key],
                        _err("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."),
                    )
        total += len((embed.get("footer") or {}).get("text") or "")
        total += len((embed.get("author") or {}).get("name") or "")
    if total > 6000:
        _set_error(
            errors,
            [*prefix, "embeds"],
            _err("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"),
        )
    return errors


def message_is_empty(data: dict[str, Any], n_files: int) -> bool:
    """Discord answers 50006 "Cannot send an empty message" to these."""
    return not (
        data.get("content")
        or data.get("embeds")
        or data.get("components")
        or data.get("poll")
        or data.get("sticker_ids")
        or n_files
    )


def validate_commands(commands: Any) -> dict[str, Any]:
    """The checks Discord applies to a bulk overwrite of application commands."""
    errors: dict[str, Any] = {}
    if not isinstance(commands, list):
        return {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "Must be an array."}]}
    if len(commands) > 100:
        errors["_errors"] = [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Too many commands."}]
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        ctype = int(cmd.get("type", 1))
        name = cmd.get("name", "")
        if ctype == 1 and (not _NAME_RE.match(name) or name != name.lower()):
            _set_error(
                errors,
                [str(i), "name"],
                _err("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"),
            )
        if (name, ctype) in seen:
            _set_error(
                errors,
                [str(i), "name"],
                _err("APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"),
            )
        seen.add((name, ctype))
        desc = cmd.get("description", "")
        if ctype == 1 and not 1 <= len(desc) <= 100:
            _set_error(
                errors,
                [str(i), "description"],
                _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
            )
        _validate_options(cmd.get("options") or [], [str(i), "options"], errors)
    return errors


def _validate_options(options: list[dict[str, Any]], path: list[str], errors: dict[str, Any]) -> None:
    if len(options) > 25:
        _set_error(errors, path, _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."))
    seen_optional = False
    for j, opt in enumerate(options):
        name = opt.get("name", "")
        if not _NAME_RE.match(name) or name != name.lower():
            _set_error(
                errors,
                [*path, str(j), "name"],
                _err("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"),
            )
        if not 1 <= len(opt.get("description", "")) <= 100:
            _set_error(
                errors,
                [*path, str(j), "description"],
                _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
            )
        if opt.get("type") in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
            _validate_options(opt.get("options") or [], [*path, str(j), "options"], errors)
            continue
        if opt.get("required"):
            if seen_optional:
                _set_error(
                    errors,
                    [*path, str(j), "required"],
                    _err(
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    ),
                )
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            _set_error(
                errors,
                [*path, str(j), "choices"],
                _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."),
            )
