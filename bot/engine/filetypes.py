"""Which image format a file is, from its first bytes: a check that costs nothing.

The CLI uses it to refuse a non-image before loading CLIP (seconds); the real
decode, in an isolated worker, still has the last word on whether it is readable.
AVIF and HEIC/HEIF are ISO base media files (an `ftyp` box naming its brands);
`isobmff_header` reads what their decoders would trust before allocating anything.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: The formats, as the refusal of any other file names them.
SUPPORTED_HINT = "PNG, JPEG, GIF, WebP, BMP, TIFF, AVIF or HEIC, or an MP4, WebM or MOV clip"
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
#: `ftyp` brands: AV1 pictures and sequences; HEVC ones (the iPhone's `heic`); and the
#: generic image/sequence brands either may carry as major brand (told apart by the others).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})


def image_format(data: bytes) -> str | None:
    """`PNG`, `JPEG`, `GIF`, `WEBP`, `BMP`, `TIFF`, `AVIF` or `HEIF` when `data` starts like one, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _isobmff_format(data)
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


#: Matroska's (and so WebM's) EBML header.
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
#: Top-level atoms an old QuickTime movie may start with, when it has no `ftyp`.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def clip_format(data: bytes) -> str | None:
    """`MP4` (MP4 and MOV: one demuxer), or `WEBM` (WebM and Matroska), when `data` starts like a
    video container; None otherwise (AVIF and HEIF, ISO files too, are pictures)."""
    if data.startswith(_EBML_MAGIC):
        return "WEBM"
    if data[4:8] == b"ftyp":
        return "MP4" if _isobmff_format(data) is None else None
    if data[4:8] in _QUICKTIME_ATOMS:
        return "MP4"
    return None


def _isobmff_format(data: bytes) -> str | None:
    """AVIF or HEIF from the `ftyp` box's major and compatible brands; None for other ISO files (MP4)."""
    size = int.from_bytes(data[:4], "big")
    major = data[8:12]
    brands = {major} | {data[at : at + 4] for at in range(16, min(size, len(data), 1024) - 3, 4)}
    if major in _AVIF_BRANDS or (major in _GENERIC_BRANDS and brands & _AVIF_BRANDS):
        return "AVIF"
    if major in _HEIF_BRANDS or major in _GENERIC_BRANDS:
        return "HEIF"
    return None


@dataclass(frozen=True, slots=True)
class IsobmffHeader:
    """What an AVIF/HEIF file declares: how many items, its largest picture (`ispe`), and
    whether its last box runs past the end of the file (an upload cut short)."""

    items: int
    #: Width and height of the largest `ispe` (image spatial extents) property; (0, 0): none read.
    largest: tuple[int, int]
    truncated: bool


def isobmff_header(data: bytes) -> IsobmffHeader:
    """The item count (`iinf`, `iloc`) and the largest declared size (`ispe`) in the `meta` box.

    libavif walks every item before it decodes one (a 3 MB file of 60,000 items parses for
    half a minute); libheif refuses over 1,000 but only says so in its own words. Reading
    the counts here costs a walk over the box headers. Malformed boxes end the walk: the
    decoder then gives its verdict.
    """
    items, largest = 0, (0, 0)
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for child, at, stop in _boxes(data, start + 12, end):  # meta is a full box
            if child == b"iinf" and stop - at >= 14:
                wide = data[at + 8] != 0
                items = max(items, int.from_bytes(data[at + 12 : at + (16 if wide else 14)], "big"))
            elif child == b"iloc" and stop - at >= 18:
                wide = data[at + 8] >= 2
                items = max(items, int.from_bytes(data[at + 14 : at + (18 if wide else 16)], "big"))
            elif child == b"iprp":
                for group, inner, inner_end in _boxes(data, at + 8, stop):
                    if group != b"ipco":
                        continue
                    for prop, p_at, p_end in _boxes(data, inner + 8, inner_end):
                        if prop == b"ispe" and p_end - p_at >= 20:
                            size = struct.unpack(">II", data[p_at + 12 : p_at + 20])
                            if size[0] * size[1] > largest[0] * largest[1]:
                                largest = size
        break
    return IsobmffHeader(items, largest, runs_past_end(data))


def runs_past_end(data: bytes) -> bool:
    """Whether an ISO base media file (AVIF, HEIF, MP4, MOV) was cut short: its top-level boxes'
    sizes add up to more than the file holds, or it ends inside a box's header."""
    at = 0
    while at < len(data):
        if at + 8 > len(data):
            return True
        size = int.from_bytes(data[at : at + 4], "big")
        if size == 1 and at + 16 <= len(data):
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        if size < 8:  # 0: "to the end of the file"; 1-7: malformed
            return False
        at += size
    return at > len(data)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of the boxes in data[start:end], stopping at the first malformed one."""
    found = []
    end = min(end, len(data))
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size == 1 and start + 16 <= end:
            size = int.from_bytes(data[start + 8 : start + 16], "big")
        elif size == 0:
            size = end - start
        if size < 8 or start + size > end:
            if size >= 8:  # cut short: what is there still counts
                found.append((kind, start, end))
            break
        found.append((kind, start, start + size))
        start += size
    return found
