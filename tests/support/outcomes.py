"""What a user ended up with after an interaction, read from the stand-in's records."""

from __future__ import annotations

from typing import Any

from tests.fakediscord.records import InteractionRecord

#: The message flag that shows a reply only to the user who asked.
EPHEMERAL = 64


def outcome(rec: InteractionRecord) -> tuple[str, dict[str, Any]] | None:
    """What the user ended up with: ("answer", message) or ("error", message), or None yet.

    An answer is the edit of the deferred message that carries the embed (or a Components V2
    layout, as search results are); an error
    is an immediate ephemeral reply (type-4 callback) or an ephemeral follow-up.
    """
    if rec.callbacks and rec.callbacks[0][1].get("type") == 4:
        return "error", rec.callbacks[0][1].get("data") or {}
    for _, body in rec.edits:
        if body.get("embeds") or body.get("components"):
            return "answer", body
        if is_error_line(body.get("content")):
            return "error", body
    for _, body in rec.followups:
        if (body.get("flags") or 0) & EPHEMERAL:
            return "error", body
        if body.get("embeds"):
            return "answer", body
    return None


def is_error_line(content: str | None) -> bool:
    """The bot's one-line error replies start with a warning sign."""
    return bool(content) and content.startswith("\u26a0\ufe0f")


def final_messages(rec: InteractionRecord) -> int:
    """How many final replies the user got (must be exactly one)."""
    immediate = sum(1 for _, body in rec.callbacks if body.get("type") == 4)
    answers = sum(
        1 for _, body in rec.edits if body.get("embeds") or body.get("components") or is_error_line(body.get("content"))
    )
    return immediate + answers + len(rec.followups)


async def wait_outcome(rec: InteractionRecord, timeout: float = 30) -> tuple[str, dict[str, Any]]:  # noqa: ASYNC109
    await rec.wait_for(lambda r: outcome(r) is not None, timeout)
    result = outcome(rec)
    assert result is not None
    return result


def embed_text(message: dict[str, Any]) -> str:
    embed = message["embeds"][0]
    parts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
    parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)
