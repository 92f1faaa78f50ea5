"""Errors that cross layers, split by who is at fault.

A `UserFacingError` carries one line that is safe to show to the person who
asked (no secret, no path, no traceback); anything else is a bug or a fault
and gets a generic reply plus a logged traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

#: A derived form this short (a password of a few characters) would scrub ordinary words too.
MIN_FORM = 4


class UserFacingError(Exception):
    """The request cannot be served as asked; `str(self)` is the reply."""


class LabelError(UserFacingError):
    """Labels, phrases or template are unusable."""


class ImageError(UserFacingError):
    """The attachment is not an image we can read (or not within limits)."""


class BusyError(UserFacingError):
    """Too much work is queued; the user should retry shortly."""


class RateLimitedError(UserFacingError):
    """One person asked too often, or has too many requests in progress (bot.discord.admission)."""


class WarmingUpError(UserFacingError):
    """The model is still being downloaded; the user should come back later."""


class EngineError(Exception):
    """CLIP failed while serving a request (e.g. an onnxruntime error)."""


class BackendUnavailableError(EngineError, UserFacingError):
    """CLIP runs elsewhere (`CLIP_BACKEND=remote`) and no server answered, retries included;
    `str(self)` tells the user to come back in a minute."""


class StartupError(Exception):
    """The bot or CLI cannot start; `str(self)` is one line for the operator."""


class ConfigError(StartupError):
    """A start-up failure that a restart cannot fix (a missing or reset token, a refused
    intent): the process exits with 78 (EX_CONFIG) so that a supervisor stops retrying."""


def too_large_message(size: int | None, max_bytes: int) -> str:
    """The one line for a file over `max_bytes` (size unknown: None)."""
    limit = f"at most {max_bytes / 2**20:g} MiB"
    if size is None:
        return f"The image is too large ({limit})."
    return f"The image is too large ({size / 2**20:.1f} MiB, {limit})."


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line (or its type's name), for one-line log and error messages."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def secret_forms(secret: str) -> set[str]:
    """`secret` and what it turns into on its way to a log: for each URL in it (comma-separated
    lists too), its password raw, percent-decoded and percent-encoded, its `user:password`,
    and the URL after its scheme (the async driver's URL differs only in the scheme)."""
    forms = {secret}
    for part in secret.split(","):
        part = part.strip()
        if "://" not in part:
            continue
        try:
            parsed = urlsplit(part)
            username, password = parsed.username, parsed.password
        except ValueError:
            continue
        forms.add(part.split("://", 1)[1])
        if password:
            plain = unquote(password)
            forms |= {password, plain, quote(plain, safe=""), quote_plus(plain), quote(plain)}
            forms |= {f"{username or ''}:{p}" for p in (password, plain)}
    return {form for form in forms if form == secret or len(form) >= MIN_FORM}


def redaction_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Every form of every secret, longest first (so one containing another goes whole)."""
    forms = {form for s in secrets if s for form in secret_forms(s)}
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(text: str, forms: Iterable[str], mark: str = "[redacted]") -> str:
    """`text` with each of `forms` (from `redaction_forms`) replaced by `mark`."""
    for form in forms:
        text = text.replace(form, mark)
    return text


def redact(text: str, secrets: Iterable[str], mark: str = "[redacted]") -> str:
    """`text` with each secret replaced, in every form it takes on its way to a log."""
    return scrub(text, redaction_forms(secrets), mark)
