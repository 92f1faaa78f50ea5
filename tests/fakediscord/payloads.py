"""Discord API v10 object shapes and the request checks Discord itself applies.

The shapes follow discord/discord-api-docs and what discord.py 2.7 reads: keys it
indexes directly (``data['x']``) must be present or the client crashes while parsing,
so each builder fills those in even where Discord would too.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import time
from typing import Any

from .media import VIDEO_CONTENT_TYPES

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
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Message flags (docs: resources/message.mdx "Message Flags").
MESSAGE_FLAG_SUPPRESS_EMBEDS = 1 << 2
MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
MESSAGE_FLAG_IS_VOICE_MESSAGE = 1 << 13
MESSAGE_FLAG_IS_COMPONENTS_V2 = 1 << 15

# Which flags a sender may set, per endpoint.
# docs: interactions/receiving-and-responding.mdx "Interaction Callback Data Structure" (Messages):
# "only SUPPRESS_EMBEDS, EPHEMERAL, IS_COMPONENTS_V2, IS_VOICE_MESSAGE, and SUPPRESS_NOTIFICATIONS".
CALLBACK_MESSAGE_FLAGS = (
    MESSAGE_FLAG_SUPPRESS_EMBEDS
    | MESSAGE_FLAG_EPHEMERAL
    | MESSAGE_FLAG_IS_COMPONENTS_V2
    | MESSAGE_FLAG_IS_VOICE_MESSAGE
    | MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS
)
# docs: same table, footnote: with DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE "the only valid message
# flag you may use is EPHEMERAL".
DEFERRED_MESSAGE_FLAGS = MESSAGE_FLAG_EPHEMERAL
# docs: receiving-and-responding.mdx "Create Followup Message" (EPHEMERAL, IS_COMPONENTS_V2) plus
# resources/webhook.mdx "Execute Webhook" (SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2).
FOLLOWUP_MESSAGE_FLAGS = (
    MESSAGE_FLAG_EPHEMERAL
    | MESSAGE_FLAG_SUPPRESS_EMBEDS
    | MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS
    | MESSAGE_FLAG_IS_COMPONENTS_V2
)
# docs: resources/webhook.mdx "Edit Webhook Message" (what "Edit Original Interaction Response"
# functions the same as): "SUPPRESS_EMBEDS and IS_COMPONENTS_V2 only"; IS_COMPONENTS_V2 "can only be set".
EDIT_MESSAGE_FLAGS = MESSAGE_FLAG_SUPPRESS_EMBEDS | MESSAGE_FLAG_IS_COMPONENTS_V2

# Interaction callback types (docs: receiving-and-responding.mdx "Interaction Callback Type").
CALLBACK_PONG = 1
CALLBACK_CHANNEL_MESSAGE = 4
CALLBACK_DEFERRED_CHANNEL_MESSAGE = 5
CALLBACK_MODAL = 9
#: What an APPLICATION_COMMAND interaction may be answered with: PONG only acks a PING,
#: 6/7 are "Only valid for component-based interactions", 8 answers autocomplete, 10 is
#: deprecated and 12 needs an Activity app (this app has none), so they are refused.
COMMAND_CALLBACK_TYPES = (CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE, CALLBACK_MODAL)
#: docs: receiving-and-responding.mdx "Interaction Callback Type": 8,
#: APPLICATION_COMMAND_AUTOCOMPLETE_RESULT, is how an autocomplete interaction (type 4) is
#: answered; nothing else is (stricter: the docs list no other for it).
CALLBACK_AUTOCOMPLETE_RESULT = 8
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5
#: docs: application-commands.mdx "Application Command Types": MESSAGE (3) commands run
#: from a message's context menu.
COMMAND_MESSAGE = 3
#: docs: components/reference.mdx "Component Types".
COMPONENT_ACTION_ROW = 1
COMPONENT_TEXT_INPUT = 4
COMPONENT_LABEL = 18
#: docs: receiving-and-responding.mdx "Autocomplete": "max of 25 choices".
MAX_AUTOCOMPLETE_CHOICES = 25

# Interaction context types (docs: receiving-and-responding.mdx "Interaction Context Types").
CONTEXT_GUILD = 0
CONTEXT_BOT_DM = 1
CONTEXT_PRIVATE_CHANNEL = 2
# Application integration types, the keys of authorizing_integration_owners.
GUILD_INSTALL = 0
USER_INSTALL = 1

# Channel types (docs: resources/channel.mdx "Channel Types").
CHANNEL_GUILD_TEXT = 0
CHANNEL_DM = 1
CHANNEL_GROUP_DM = 3

# Permission bits used for (G)DM app_permissions (docs: topics/permissions.mdx).
PERMISSION_MENTION_EVERYONE = 1 << 17
PERMISSION_EMBED_LINKS = 1 << 14
PERMISSION_ATTACH_FILES = 1 << 15
PERMISSION_USE_EXTERNAL_EMOJIS = 1 << 18
# docs: receiving-and-responding.mdx "Interaction Structure", footnote ***: app_permissions
# "includes ATTACH_FILES | EMBED_LINKS | MENTION_EVERYONE permissions for (G)DMs with other
# users, and additionally includes USE_EXTERNAL_EMOJIS for DMs with the app's bot user".
PRIVATE_APP_PERMISSIONS = str(PERMISSION_ATTACH_FILES | PERMISSION_EMBED_LINKS | PERMISSION_MENTION_EVERYONE)
BOT_DM_APP_PERMISSIONS = str(int(PRIVATE_APP_PERMISSIONS) | PERMISSION_USE_EXTERNAL_EMOJIS)

# docs: interactions/receiving-and-responding.mdx "Create Followup Message": at most 5 follow-ups
# when authorizing_integration_owners only contains USER_INSTALL.
USER_INSTALL_FOLLOWUP_LIMIT = 5

# Application command option types (docs: interactions/application-commands).
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_NUMBER = 10
OPTION_CHANNEL = 7
OPTION_ATTACHMENT = 11
#: Option types whose values the client checks against the definition (option_value_error).
VALUE_OPTION_TYPES = (OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_NUMBER)

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


def dm_channel_object(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    """A DM channel (type 1) as an interaction's partial ``channel``."""
    return {
        "id": str(channel_id),
        "type": CHANNEL_DM,
        "last_message_id": None,
        "flags": 0,
        "recipients": [recipient],
    }


def group_dm_object(channel_id: int, owner: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """A group DM (type 3) as an interaction's partial ``channel``."""
    return {
        "id": str(channel_id),
        "type": CHANNEL_GROUP_DM,
        "name": None,
        "icon": None,
        "owner_id": owner["id"],
        "last_message_id": None,
        "flags": 0,
        "recipients": [owner, *others],
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
    duration_secs: float | None = None,
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
    if duration_secs is not None:  # "the duration of the audio or video file"
        obj["duration_secs"] = duration_secs
    return obj


#: The media type Discord's CDN gives an uploaded image, by its file name's extension (docs:
#: resources/message.mdx "Attachment Structure": `content_type`, "the attachment's media type",
#: linking IANA's list, where HEIC and HEIF are image/heic and image/heif and AVIF image/avif;
#: Discord serves an iPhone's .HEIC as image/heic). Others get no content_type, as Discord sends none.
_UPLOAD_CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    **VIDEO_CONTENT_TYPES,
}


def upload_content_type(filename: str) -> str | None:
    """The `content_type` Discord gives an upload named `filename` (case-insensitive extension)."""
    dot = filename.rfind(".")
    return _UPLOAD_CONTENT_TYPES.get(filename[dot:].lower()) if dot >= 0 else None


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
#
# Each check cites the docs page it follows. Where the docs leave room, the check is the
# stricter reading, so a bot that passes here cannot be refused by the real Discord for
# these reasons.

# docs: interactions/application-commands.mdx "Application Command Naming":
# ^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$ (Python's \w is letters, digits and "_").
_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
_EMBED_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
_MENTION_TYPES = ("roles", "users", "everyone")


def text_units(text: str, *, strip: bool = True) -> int:
    """Length the strict way: trimmed like Discord trims embeds, counted in UTF-16 code units.

    docs: resources/message.mdx "Embed Limits": "Leading and trailing whitespace characters are
    not included (they are trimmed automatically)". The docs say "characters"; UTF-16 units are
    never fewer than code points (an astral emoji counts 2), so this is the stricter count.
    """
    if strip:
        text = text.strip()
    return len(text.encode("utf-16-le")) // 2


def _err(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _set_error(errors: dict[str, Any], path: list[str], value: dict[str, Any]) -> None:
    node = errors
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _too_long(limit: int) -> dict[str, Any]:
    return _err("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def validate_message(
    data: dict[str, Any],
    prefix: list[str],
    *,
    allowed_flags: int | None = None,
    attachment_names: set[str] | None = None,
) -> dict[str, Any]:
    """Limits Discord enforces on message bodies; returns Discord's nested ``errors``.

    ``allowed_flags`` is the set of message flags this endpoint lets a sender set (None:
    not checked). ``attachment_names`` are the files an ``attachment://`` embed URL may
    name: those uploaded with this request plus those kept on the message being edited.
    """
    errors: dict[str, Any] = {}
    content = data.get("content")
    # docs: resources/message.mdx "Create Message" JSON params: content "up to 2000 characters".
    # Not trimmed here (the trimming rule is documented for embeds only): stricter.
    if isinstance(content, str) and text_units(content, strip=False) > 2000:
        _set_error(errors, [*prefix, "content"], _too_long(2000))
    flags = data.get("flags")
    if allowed_flags is not None and flags is not None:
        if not isinstance(flags, int) or flags < 0:
            _set_error(errors, [*prefix, "flags"], _err("NUMBER_TYPE_COERCE", f"Value {flags!r} is not int."))
        elif flags & ~allowed_flags:
            _set_error(
                errors,
                [*prefix, "flags"],
                _err("MESSAGE_FLAGS_INVALID", f"Flags {flags & ~allowed_flags} cannot be set on this endpoint."),
            )
    _check_allowed_mentions(data.get("allowed_mentions"), [*prefix, "allowed_mentions"], errors)
    embeds = data.get("embeds") or []
    # docs: receiving-and-responding.mdx "Messages": embeds "Supports up to 10 embeds".
    if len(embeds) > 10:
        _set_error(errors, [*prefix, "embeds"], _too_long(10))
    total = 0
    names = attachment_names or set()
    for i, embed in enumerate(embeds):
        total += _check_embed(embed, [*prefix, "embeds", str(i)], names, errors)
    # docs: resources/message.mdx "Embed Limits": the combined sum across all embeds <= 6000.
    if total > 6000:
        _set_error(
            errors,
            [*prefix, "embeds"],
            _err("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"),
        )
    return errors


def _check_embed(embed: Any, path: list[str], attachment_names: set[str], errors: dict[str, Any]) -> int:
    """One embed's own limits (each checked on its own); returns its share of the 6000 total."""
    if not isinstance(embed, dict):
        _set_error(errors, path, _err("MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
        return 0
    total = 0

    def measure(value: Any, where: list[str], limit: int, *, required: bool = False) -> None:
        nonlocal total
        text = value if isinstance(value, str) else ""
        units = text_units(text)
        total += units
        if required and units == 0:
            _set_error(errors, where, _err("BASE_TYPE_REQUIRED", "This field is required"))
        elif units > limit:
            _set_error(errors, where, _too_long(limit))

    # docs: resources/message.mdx "Embed Limits" (title 256, description 4096, fields 25,
    # field.name 256, field.value 1024, footer.text 2048, author.name 256).
    measure(embed.get("title"), [*path, "title"], 256)
    measure(embed.get("description"), [*path, "description"], 4096)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        _set_error(errors, [*path, "fields"], _too_long(25))
    for j, fld in enumerate(fields):
        # docs: resources/message.mdx "Embed Field Structure": name and value are required.
        measure(fld.get("name"), [*path, "fields", str(j), "name"], 256, required=True)
        measure(fld.get("value"), [*path, "fields", str(j), "value"], 1024, required=True)
    footer = embed.get("footer")
    if isinstance(footer, dict):
        # docs: resources/message.mdx "Embed Footer Structure": text is required.
        measure(footer.get("text"), [*path, "footer", "text"], 2048, required=True)
        _check_url(footer.get("icon_url"), [*path, "footer", "icon_url"], attachment_names, errors)
    author = embed.get("author")
    if isinstance(author, dict):
        # docs: resources/message.mdx "Embed Author Structure": name is required.
        measure(author.get("name"), [*path, "author", "name"], 256, required=True)
        _check_url(author.get("url"), [*path, "author", "url"], None, errors)
        _check_url(author.get("icon_url"), [*path, "author", "icon_url"], attachment_names, errors)
    # docs: resources/message.mdx "Embed Structure": url "url of embed" (scheme not stated:
    # http(s) only, the stricter reading, as for author.url "only supports http(s)").
    _check_url(embed.get("url"), [*path, "url"], None, errors)
    for key in ("thumbnail", "image"):
        media = embed.get(key)
        if isinstance(media, dict):
            # docs: "Embed Thumbnail/Image Structure": url "only supports http(s) and attachments".
            _check_url(media.get("url"), [*path, key, "url"], attachment_names, errors, required=True)
    return total


def _check_url(
    url: Any,
    path: list[str],
    attachment_names: set[str] | None,
    errors: dict[str, Any],
    *,
    required: bool = False,
) -> None:
    """http(s) URLs, or (where ``attachment_names`` is given) ``attachment://<file>``.

    docs: resources/message.mdx embed structures ("only supports http(s) and attachments")
    and reference.mdx "Using Attachments within Embeds" ("Only .jpg, .jpeg, .png, .webp, and
    .gif may be used"). An ``attachment://`` name that matches no file of the message is
    refused: Discord would silently show no image, which a test must not mistake for success.
    """
    if url is None:
        if required:
            _set_error(errors, path, _err("BASE_TYPE_REQUIRED", "This field is required"))
        return
    if not isinstance(url, str):
        _set_error(errors, path, _err("URL_TYPE_INVALID_URL", "Not a well formed URL."))
        return
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https") and rest:
        return
    if sep and scheme == "attachment" and attachment_names is not None:
        if not rest.lower().endswith(_EMBED_IMAGE_EXTENSIONS):
            _set_error(
                errors,
                path,
                _err("URL_TYPE_INVALID_URL", f"attachment://{rest}: only .jpg, .jpeg, .png, .webp and .gif files."),
            )
        elif rest not in attachment_names:
            _set_error(
                errors,
                path,
                _err(
                    "URL_TYPE_INVALID_URL",
                    f"attachment://{rest} names no file of this message (has: {sorted(attachment_names)}).",
                ),
            )
        return
    _set_error(errors, path, _err("URL_TYPE_INVALID_URL", "Not a well formed URL."))


def _check_allowed_mentions(am: Any, path: list[str], errors: dict[str, Any]) -> None:
    """docs: resources/message.mdx "Allowed Mentions Object".

    ``parse`` is "mutually exclusive with the other fields": "users" in ``parse`` together
    with a non-empty ``users`` list is an error (an empty/null list is documented as fine);
    the same for roles. ``users``/``roles`` hold at most 100 ids.
    """
    if am is None:
        return
    if not isinstance(am, dict):
        _set_error(errors, path, _err("MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
        return
    parse = am.get("parse") or []
    for k, kind in enumerate(parse):
        if kind not in _MENTION_TYPES:
            _set_error(
                errors,
                [*path, "parse", str(k)],
                _err("BASE_TYPE_CHOICES", "Value must be one of ('roles', 'users', 'everyone')."),
            )
    for kind in ("users", "roles"):
        ids = am.get(kind)
        if ids and kind in parse:
            _set_error(
                errors,
                path,
                _err(
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                ),
            )
        if ids and len(ids) > 100:
            _set_error(errors, [*path, kind], _too_long(100))


def validate_modal(data: dict[str, Any]) -> dict[str, Any]:
    """docs: receiving-and-responding.mdx "Modal": custom_id 1-100, title max 45, 1-5 components.

    Each component must be a Label (type 18) around a Text Input (type 4): components/
    reference.mdx "Text Input" says Text Inputs "must be placed inside a Label" and no longer
    recommends Action Rows in modals, so the stand-in refuses them (stricter). Label: text max
    45, description max 100. Text Input: custom_id 1-100, style 1 or 2, min_length 0-4000,
    max_length 1-4000, value max 4000 (and within max_length, stricter), placeholder max 100.
    """
    errors: dict[str, Any] = {}
    custom_id, title, components = data.get("custom_id"), data.get("title"), data.get("components")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        _set_error(errors, ["data", "custom_id"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
    if not isinstance(title, str) or not 1 <= text_units(title) <= 45:
        _set_error(errors, ["data", "title"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."))
    if not isinstance(components, list) or not 1 <= len(components) <= 5:
        _set_error(errors, ["data", "components"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."))
        return errors
    for i, label in enumerate(components):
        where = ["data", "components", str(i)]
        if not isinstance(label, dict) or label.get("type") != COMPONENT_LABEL:
            _set_error(errors, [*where, "type"], _err("COMPONENT_TYPE_INVALID", "Modal components must be Labels."))
            continue
        if not isinstance(label.get("label"), str) or not 1 <= text_units(label["label"]) <= 45:
            _set_error(errors, [*where, "label"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."))
        if label.get("description") is not None and text_units(label["description"]) > 100:
            _set_error(errors, [*where, "description"], _err("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."))
        field = label.get("component")
        if not isinstance(field, dict) or field.get("type") != COMPONENT_TEXT_INPUT:
            _set_error(errors, [*where, "component"], _err("COMPONENT_TYPE_INVALID", "Expected a Text Input."))
            continue
        cid = field.get("custom_id")
        if not isinstance(cid, str) or not 1 <= len(cid) <= 100:
            _set_error(errors, [*where, "component", "custom_id"], _err("BASE_TYPE_BAD_LENGTH", "Must be 1-100."))
        if field.get("style") not in (1, 2):
            _set_error(errors, [*where, "component", "style"], _err("BASE_TYPE_CHOICES", "Must be 1 or 2."))
        low, high = field.get("min_length", 0), field.get("max_length", 4000)
        if not (0 <= low <= 4000 and 1 <= high <= 4000 and low <= high):
            _set_error(errors, [*where, "component", "max_length"], _err("BASE_TYPE_BAD_LENGTH", "Bad length range."))
        value = field.get("value")
        if value is not None and (not isinstance(value, str) or text_units(value, strip=False) > min(4000, high)):
            _set_error(errors, [*where, "component", "value"], _err("BASE_TYPE_MAX_LENGTH", "Value too long."))
        placeholder = field.get("placeholder")
        if placeholder is not None and text_units(placeholder, strip=False) > 100:
            _set_error(errors, [*where, "component", "placeholder"], _err("BASE_TYPE_MAX_LENGTH", "Max 100."))
    return errors


def text_input_value_error(component: dict[str, Any], value: str) -> str | None:
    """Why the client would not submit ``value`` in this Text Input, or None."""
    required = component.get("required", True)
    if required and not value.strip():
        return "is required"
    if value and len(value) < component.get("min_length", 0):
        return f"is shorter than min_length {component.get('min_length')}"
    if text_units(value, strip=False) > component.get("max_length", 4000):
        return f"is longer than max_length {component.get('max_length', 4000)}"
    return None


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
    """The checks Discord applies to a bulk overwrite of application commands.

    docs: interactions/application-commands.mdx "Application Command Structure", "Application
    Command Option Structure", "Application Command Option Choice Structure" and the 8000
    character limit under "Slash Commands".
    """
    errors: dict[str, Any] = {}
    if not isinstance(commands, list):
        return {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "Must be an array."}]}
    if len(commands) > 100:
        errors["_errors"] = [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Too many commands."}]
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict):
            _set_error(errors, [str(i)], _err("MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
            continue
        ctype = int(cmd.get("type", 1))
        name = cmd.get("name", "")
        if ctype == 1 and not _valid_name(name):
            _set_error(
                errors,
                [str(i), "name"],
                _err("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"),
            )
        elif not 1 <= len(name) <= 32:
            _set_error(errors, [str(i), "name"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."))
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
        _check_context_lists(cmd, [str(i)], errors)
        _validate_options(cmd.get("options") or [], [str(i), "options"], errors)
        if ctype == 1:
            size = command_size(cmd)
            if size > 8000:
                _set_error(
                    errors,
                    [str(i)],
                    _err(
                        "APPLICATION_COMMAND_TOO_LARGE",
                        f"Command exceeds maximum size (8000); it is {size}.",
                    ),
                )
    return errors


def _check_context_lists(cmd: dict[str, Any], path: list[str], errors: dict[str, Any]) -> None:
    """integration_types in {0, 1}; contexts in {0, 1, 2} (or null)."""
    for key, valid in (("integration_types", (GUILD_INSTALL, USER_INSTALL)), ("contexts", (0, 1, 2))):
        values = cmd.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or any(v not in valid for v in values):
            _set_error(errors, [*path, key], _err("BASE_TYPE_CHOICES", f"Value must be one of {valid}."))


def _valid_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and name == name.lower()


def _longest(obj: dict[str, Any], key: str) -> int:
    """docs: "only the longest localization for each field (including the default value) is counted"."""
    values = [obj.get(key), *(obj.get(f"{key}_localizations") or {}).values()]
    return max((text_units(str(v), strip=False) for v in values if v is not None), default=0)


def command_size(cmd: dict[str, Any]) -> int:
    """Characters counted towards a slash command's 8000 limit (UTF-16 units: stricter).

    docs: application-commands.mdx "Slash Commands": "combined name, description, and value
    properties for each command, its options (including subcommands and groups), and choices".
    """

    def size(node: dict[str, Any]) -> int:
        n = _longest(node, "name") + _longest(node, "description")
        for choice in node.get("choices") or []:
            n += _longest(choice, "name") + text_units(str(choice.get("value", "")), strip=False)
        return n + sum(size(o) for o in node.get("options") or [] if isinstance(o, dict))

    return size(cmd)


def _validate_options(options: list[dict[str, Any]], path: list[str], errors: dict[str, Any]) -> None:
    if len(options) > 25:
        _set_error(errors, path, _too_long(25))
    seen_optional = False
    seen_names: set[str] = set()
    for j, opt in enumerate(options):
        where = [*path, str(j)]
        name = opt.get("name", "")
        if not _valid_name(name):
            _set_error(errors, [*where, "name"], _err("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"))
        if name in seen_names:
            # docs: "name must be unique within an array of application command options".
            _set_error(
                errors,
                [*where, "name"],
                _err("APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"),
            )
        seen_names.add(name)
        if not 1 <= len(opt.get("description", "")) <= 100:
            _set_error(
                errors, [*where, "description"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            )
        otype = opt.get("type")
        if otype in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
            _validate_options(opt.get("options") or [], [*where, "options"], errors)
            continue
        if opt.get("required"):
            if seen_optional:
                _set_error(
                    errors,
                    [*where, "required"],
                    _err(
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    ),
                )
        else:
            seen_optional = True
        choices = opt.get("choices") or []
        if len(choices) > 25:
            _set_error(errors, [*where, "choices"], _too_long(25))
        if choices and opt.get("autocomplete"):
            # docs: "autocomplete may not be set to true if choices are present".
            _set_error(
                errors,
                [*where, "autocomplete"],
                _err("APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES", "Autocomplete cannot be set with choices"),
            )
        for k, choice in enumerate(choices):
            cname = choice.get("name", "")
            if not isinstance(cname, str) or not 1 <= len(cname) <= 100:
                _set_error(
                    errors,
                    [*where, "choices", str(k), "name"],
                    _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
                )
            value = choice.get("value")
            if isinstance(value, str) and len(value) > 100:
                _set_error(errors, [*where, "choices", str(k), "value"], _too_long(100))
        # docs: min_length "minimum of 0, maximum of 6000"; max_length "minimum of 1, maximum of 6000".
        for key, low in (("min_length", 0), ("max_length", 1)):
            if key in opt and opt[key] is not None and not low <= int(opt[key]) <= 6000:
                _set_error(
                    errors,
                    [*where, key],
                    _err("NUMBER_TYPE_MAX" if int(opt[key]) > 6000 else "NUMBER_TYPE_MIN", f"{key} out of range"),
                )


def validate_autocomplete(data: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
    """Errors of an autocomplete result for the focused option (empty dict when valid).

    docs: receiving-and-responding.mdx "Autocomplete" (choices, max of 25) and
    application-commands.mdx "Application Command Option Choice Structure": name is a
    "1-100 character choice name" (counted in UTF-16 units here, stricter), value's type
    "depends on the option type", "up to 100 characters if string".
    """
    errors: dict[str, Any] = {}
    choices = data.get("choices")
    if not isinstance(choices, list):
        _set_error(errors, ["data", "choices"], _err("BASE_TYPE_REQUIRED", "This field is required"))
        return errors
    if len(choices) > MAX_AUTOCOMPLETE_CHOICES:
        _set_error(
            errors,
            ["data", "choices"],
            _err("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_AUTOCOMPLETE_CHOICES} or fewer in length."),
        )
    otype = int(option["type"])
    for i, choice in enumerate(choices):
        where = ["data", "choices", str(i)]
        name = choice.get("name") if isinstance(choice, dict) else None
        value = choice.get("value") if isinstance(choice, dict) else None
        if not isinstance(name, str) or not 1 <= text_units(name, strip=False) <= 100:
            _set_error(errors, [*where, "name"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."))
        if otype == OPTION_STRING:
            if not isinstance(value, str):
                _set_error(errors, [*where, "value"], _err("STRING_TYPE_CONVERT", "Could not interpret as string."))
            elif text_units(value, strip=False) > 100:
                _set_error(errors, [*where, "value"], _err("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            _set_error(errors, [*where, "value"], _err("NUMBER_TYPE_COERCE", "Value is not a valid number."))
    return errors


def option_value_error(definition: dict[str, Any], value: Any) -> str | None:
    """Why Discord's client would not send ``value`` for this option, or None if it would.

    docs: application-commands.mdx "Application Command Option Structure" / "Option Type" /
    "Option Choice Structure": choices are "the only valid values"; min/max_value, min/max_length
    bound what the user can enter; INTEGER is "between -2^53+1 and 2^53-1", NUMBER "between
    -2^53 and 2^53". Strings are measured in UTF-16 units for max_length (stricter), code points
    for min_length (stricter the other way), and the client sends no empty string.
    """
    otype = int(definition["type"])
    choices = definition.get("choices")
    if otype == OPTION_STRING:
        if not isinstance(value, str):
            return f"needs a string, got {type(value).__name__}"
        if not value.strip():
            return "is empty (the client does not send an empty string option)"
        max_len = definition.get("max_length", 6000)
        if text_units(value, strip=False) > max_len:
            return f"is {text_units(value, strip=False)} UTF-16 units long; max_length is {max_len}"
        min_len = definition.get("min_length")
        if min_len is not None and len(value) < min_len:
            return f"is {len(value)} characters long; min_length is {min_len}"
    elif otype in (OPTION_INTEGER, OPTION_NUMBER):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"needs a number, got {type(value).__name__}"
        if otype == OPTION_INTEGER and not isinstance(value, int):
            return f"needs an integer, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value!r} is not a finite number"
        bound = 2**53 - 1 if otype == OPTION_INTEGER else 2**53
        if abs(value) > bound:
            return f"{value} is outside +-{bound}"
        low, high = definition.get("min_value"), definition.get("max_value")
        if low is not None and value < low:
            return f"{value} is below min_value {low}"
        if high is not None and value > high:
            return f"{value} is above max_value {high}"
    elif otype == OPTION_BOOLEAN and not isinstance(value, bool):
        return f"needs a boolean, got {type(value).__name__}"
    if choices is not None and value not in [c.get("value") for c in choices]:
        return f"{value!r} is not one of the choices {[c.get('value') for c in choices]}"
    return None
