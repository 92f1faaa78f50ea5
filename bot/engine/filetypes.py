"""Which image format a file is, from its first bytes: a check that costs nothing.

The CLI uses it to refuse a non-image before loading CLIP (seconds); the real
decode, in an isolated worker, still has the last word on whether it is readable.
"""

from __future__ import annotations

#: Leading bytes of the formats `bot.engine.images` accepts.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)


def image_format(data: bytes) -> str | None:
    """`PNG`, `JPEG`, `GIF`, `WEBP`, `BMP` or `TIFF` when `data` starts like one, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None
