"""Components V2 in message bodies: the rules the stand-in enforces before accepting a layout.

docs: components/reference.mdx (discord/discord-api-docs), cited per rule below:

- "To use these components, you need to send the message flag `1 << 15` (IS_COMPONENTS_V2)"
  (Section, Text Display, Thumbnail, Media Gallery, File, Separator, Container each say so);
- with the flag, "The `content` and `embeds` fields will no longer work" and "The `poll` and
  `stickers` fields are disabled": refused here (stricter than "no longer work");
- "Messages allow up to 40 total components" (nested ones count: stricter where unsure);
- nesting: top-level layout/content components are Action Row, Section, Text Display, Media
  Gallery, File, Separator, Container ("Container Child Components": Action Row, Text
  Display, Section, Media Gallery, Separator, File; "Section Child Components": Text
  Display, one to three; "Section Accessory Components": Button, Thumbnail; Action Row: up
  to 5 Buttons or a single select); without the flag only Action Rows may be top level
  ("Legacy Message Component Behavior");
- Media Gallery: "1 to 10 media gallery items", each with a `media.url`, alt text
  ("description") "max 1024 characters";
- Text Display content: the docs give no number; discord.py 2.7 documents "a maximum of
  4000 display characters across all its items", which is enforced here (stricter where unsure);
- "Once a message has been sent with this flag, it can't be removed from that message"
  (the edit check is in `FakeDiscord._check_message`).
"""

from __future__ import annotations

from typing import Any

from . import payloads as P

ACTION_ROW, BUTTON, SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER = (
    1,
    2,
    9,
    10,
    11,
    12,
    13,
    14,
    17,
)
SELECTS = {3, 5, 6, 7, 8}
#: docs: components/reference.mdx: each of these "you must send the message flag 1 << 15".
V2_ONLY = {SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER}
TOP_LEVEL_V2 = {ACTION_ROW, SECTION, TEXT_DISPLAY, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER}
CONTAINER_CHILDREN = {ACTION_ROW, TEXT_DISPLAY, SECTION, MEDIA_GALLERY, SEPARATOR, FILE}
SECTION_ACCESSORIES = {BUTTON, THUMBNAIL}
MAX_COMPONENTS = 40
MAX_GALLERY_ITEMS = 10
MAX_ALT_TEXT = 1024
MAX_TEXT_DISPLAY_TOTAL = 4000


def validate_components(data: dict[str, Any], prefix: list[str], *, flags: int | None = None) -> dict[str, Any]:
    """Discord's nested ``errors`` for ``data``'s components (``flags``: the message's flags after
    this request, when it edits one; else the body's own)."""
    errors: dict[str, Any] = {}
    components = data.get("components") or []
    effective = int(data.get("flags") or 0) if flags is None else flags
    v2 = bool(effective & P.MESSAGE_FLAG_IS_COMPONENTS_V2)
    if v2:
        for field in ("content", "embeds", "poll", "sticker_ids"):
            if data.get(field):
                P._set_error(
                    errors,
                    [*prefix, field],
                    P._err(
                        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                        f"{field} cannot be used with IS_COMPONENTS_V2.",
                    ),
                )
    if not isinstance(components, list):
        P._set_error(errors, [*prefix, "components"], P._err("BASE_TYPE_BAD_TYPE", "Must be an array."))
        return errors
    counter = [0]
    text = [0]
    for i, component in enumerate(components):
        where = [*prefix, "components", str(i)]
        allowed = TOP_LEVEL_V2 if v2 else {ACTION_ROW}
        _check(component, where, allowed, v2, counter, text, errors)
    if counter[0] > MAX_COMPONENTS:
        P._set_error(
            errors,
            [*prefix, "components"],
            P._err("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_COMPONENTS} or fewer in total."),
        )
    if text[0] > MAX_TEXT_DISPLAY_TOTAL:
        P._set_error(
            errors,
            [*prefix, "components"],
            P._err("BASE_TYPE_MAX_LENGTH", f"Text displays hold {MAX_TEXT_DISPLAY_TOTAL} characters or fewer in all."),
        )
    return errors


def _check(
    component: Any,
    where: list[str],
    allowed: set[int],
    v2: bool,
    counter: list[int],
    text: list[int],
    errors: dict[str, Any],
) -> None:
    if not isinstance(component, dict) or not isinstance(component.get("type"), int):
        P._set_error(errors, [*where, "type"], P._err("BASE_TYPE_REQUIRED", "This field is required"))
        return
    counter[0] += 1
    kind = component["type"]
    if kind in V2_ONLY and not v2:
        P._set_error(errors, [*where, "type"], P._err("COMPONENT_LAYOUT_INVALID", "Needs the IS_COMPONENTS_V2 flag."))
        return
    if kind not in allowed:
        P._set_error(
            errors, [*where, "type"], P._err("COMPONENT_TYPE_INVALID", f"Component type {kind} is not allowed here.")
        )
        return
    children = component.get("components") or []
    if kind == CONTAINER:
        for i, child in enumerate(children):
            _check(child, [*where, "components", str(i)], CONTAINER_CHILDREN, v2, counter, text, errors)
    elif kind == SECTION:
        if not 1 <= len(children) <= 3:
            P._set_error(
                errors, [*where, "components"], P._err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 3 in length.")
            )
        for i, child in enumerate(children):
            _check(child, [*where, "components", str(i)], {TEXT_DISPLAY}, v2, counter, text, errors)
        _check(component.get("accessory"), [*where, "accessory"], SECTION_ACCESSORIES, v2, counter, text, errors)
    elif kind == ACTION_ROW:
        buttons = [c for c in children if isinstance(c, dict) and c.get("type") == BUTTON]
        selects = [c for c in children if isinstance(c, dict) and c.get("type") in SELECTS]
        if (
            not children
            or len(buttons) + len(selects) != len(children)
            or (selects and len(children) != 1)
            or len(buttons) > 5
        ):
            P._set_error(
                errors,
                [*where, "components"],
                P._err("COMPONENT_LAYOUT_INVALID", "Up to 5 buttons or a single select."),
            )
        counter[0] += len(children)
    elif kind == TEXT_DISPLAY:
        content = component.get("content")
        if not isinstance(content, str) or not content:
            P._set_error(errors, [*where, "content"], P._err("BASE_TYPE_REQUIRED", "This field is required"))
        else:
            text[0] += P.text_units(content, strip=False)
    elif kind == MEDIA_GALLERY:
        items = component.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_GALLERY_ITEMS:
            P._set_error(
                errors,
                [*where, "items"],
                P._err("BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_GALLERY_ITEMS} in length."),
            )
            return
        for i, item in enumerate(items):
            media = item.get("media") if isinstance(item, dict) else None
            if not isinstance(media, dict) or not isinstance(media.get("url"), str) or not media["url"]:
                P._set_error(
                    errors,
                    [*where, "items", str(i), "media", "url"],
                    P._err("BASE_TYPE_REQUIRED", "This field is required"),
                )
            description = item.get("description") if isinstance(item, dict) else None
            if isinstance(description, str) and P.text_units(description, strip=False) > MAX_ALT_TEXT:
                P._set_error(errors, [*where, "items", str(i), "description"], P._too_long(MAX_ALT_TEXT))
    elif kind == THUMBNAIL:
        media = component.get("media")
        if not isinstance(media, dict) or not media.get("url"):
            P._set_error(errors, [*where, "media", "url"], P._err("BASE_TYPE_REQUIRED", "This field is required"))


def components_v2_errors(data: dict[str, Any], prefix: list[str], editing: dict[str, Any] | None) -> dict[str, Any]:
    """`validate_components` for a message created (``editing`` None) or edited: an edit is judged
    on what the message holds afterwards (its flags keep IS_COMPONENTS_V2 once set)."""
    try:
        asked = int(data.get("flags") or 0)
    except (TypeError, ValueError):
        return {}  # `validate_message` reports the bad flags
    if editing is None:
        return validate_components(data, prefix, flags=asked)
    after = editing["flags"] | (asked & P.MESSAGE_FLAG_IS_COMPONENTS_V2)
    fields = ("content", "embeds", "poll", "sticker_ids", "components")
    merged = {field: data[field] if field in data else editing.get(field) for field in fields}
    return validate_components(merged, prefix, flags=after)
