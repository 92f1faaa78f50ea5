"""A corpus of broken, hostile and unusual images, generated on the fly.

Shared by the decoder tests, the CLI tests and the end-to-end tests, so each
layer is checked against the same inputs.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pillow_heif
from PIL import Image

from tests.support.shapes import render

# The tests encode HEIF files (the bot loads the plugin only on the first HEIF it decodes).
pillow_heif.register_heif_opener()


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming a huge size, with a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def animated_gif(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
    frames = [solid(first), solid(second)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def animated_webp(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
    frames = [solid(first), solid(second)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """Stored landscape 80x40 (left half red, right half blue), EXIF orientation 6.

    Orientation 6 means "rotate 90° clockwise to display": upright it is a
    40x80 portrait whose top half is red.
    """
    stored = Image.new("RGB", (80, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit_grey_png(level: int) -> bytes:
    samples = np.full((32, 32), level, dtype=np.uint16)
    return encode(Image.fromarray(samples, "I;16"), "PNG")


def corpus() -> dict[str, bytes]:
    """Bad inputs: each must be refused with a one-line message."""
    jpeg = encode(solid((200, 30, 30), (256, 256)), "JPEG", quality=90)
    png = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)), "PNG")
    return {
        "zero-byte": b"",
        "text-renamed-png": b"this is not an image, just text saved as cat.png\n" * 4,
        "truncated-jpeg": jpeg[: len(jpeg) // 2],
        "truncated-png": png[: len(png) // 2],
        "header-only-png": png[:40],
        "png-50000x50000": png_declaring(50_000, 50_000),
        "garbage": bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
        "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    }


def unusual_but_valid() -> dict[str, tuple[bytes, tuple[int, int, int]]]:
    """Odd modes and containers that must decode; with the expected centre colour."""
    palette = solid((0, 200, 0)).convert("P")
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 0))  # fully transparent red: shows the white backdrop
    grey_alpha = Image.new("LA", (64, 48), (80, 255))
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # red in CMYK
    return {
        "animated-gif-first-frame": (animated_gif((255, 0, 0), (0, 0, 255)), (255, 0, 0)),
        "animated-webp-first-frame": (animated_webp((0, 0, 255), (255, 0, 0)), (0, 0, 255)),
        "palette-png": (encode(palette, "PNG"), (0, 200, 0)),
        "transparent-rgba-png": (encode(rgba, "PNG"), (255, 255, 255)),
        "grey-alpha-png": (encode(grey_alpha, "PNG"), (80, 80, 80)),
        "cmyk-jpeg": (encode(cmyk, "JPEG", quality=95), (255, 0, 0)),
        "16-bit-grey-png": (sixteen_bit_grey_png(65535 // 2), (128, 128, 128)),
        "greyscale-jpeg": (encode(Image.new("L", (64, 48), 100), "JPEG", quality=95), (100, 100, 100)),
        "1-bit-png": (encode(Image.new("1", (64, 48), 1), "PNG"), (255, 255, 255)),
        "bmp": (encode(solid((10, 20, 30)), "BMP"), (10, 20, 30)),
        "tiff": (encode(solid((10, 20, 30)), "TIFF"), (10, 20, 30)),
    }


# ------------------------------------------------------------------------------------------------
# Hostile uploads: small files whose decode would run for many seconds, or need gigabytes, or
# whose metadata breaks Pillow's helpers. Each is built here, nothing is committed.


def gif_comment_bomb(blocks: int = 600_000) -> bytes:
    """A 1 x 1 GIF behind `blocks` empty comment extensions (3 bytes each).

    Pillow's cost grows with the square of the count: 100,000 take ~0.3 s, 600,000 ~10 s.
    """
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + b"\x21\xfe\x00" * blocks + image + b"\x3b"


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG segment; a scan runs to the next non-RST marker."""
    segments, index = [], 2
    while index < len(data):
        marker = data[index + 1]
        if marker == 0xD9:
            segments.append((marker, index, index + 2))
            break
        end = index + 2 + struct.unpack(">H", data[index + 2 : index + 4])[0]
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        segments.append((marker, index, end))
        index = end
    return segments


def jpeg_scan_bomb(scans: int = 2500, side: int = 2048) -> bytes:
    """A flat grey progressive JPEG with its last scan repeated `scans` times.

    libjpeg walks every block of the picture once per scan: ~4 ms per scan at
    2048 x 2048 here, so 2,500 scans (~60 KB) take ~10 s.
    """
    data = encode(Image.new("L", (side, side), 128), "JPEG", progressive=True, quality=50)
    start, end = [(s, e) for marker, s, e in _jpeg_segments(data) if marker == 0xDA][-1]
    return data[:end] + data[start:end] * scans + data[end:]


def _tiff(width: int, height: int, entries: list[tuple[int, int, int, bytes]], tail: bytes) -> bytes:
    """A little-endian TIFF with one IFD; `tail` (strip tables, pixels) follows it at `tiff_data_at`."""
    del width, height
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        ifd += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00\x00\x00\x00" + tail


def _tiff_data_at(entry_count: int) -> int:
    return 8 + 2 + 12 * entry_count + 4


def tiff_strip_bomb(strips: int = 1_000_000) -> bytes:
    """A 1-pixel-wide grey TIFF of `strips` one-row strips (all pointing at one byte): ~5.5 µs and
    ~450 bytes of memory per strip in libtiff, so a million take ~5 s; the file is 8 MB."""
    data_at = _tiff_data_at(9)
    offsets_at, counts_at = data_at, data_at + 4 * strips
    pixel_at = counts_at + 4 * strips
    entries = [
        (256, 4, 1, struct.pack("<I", 1)),
        (257, 4, 1, struct.pack("<I", strips)),
        (258, 3, 1, struct.pack("<H", 8)),
        (259, 3, 1, struct.pack("<H", 1)),
        (262, 3, 1, struct.pack("<H", 1)),
        (273, 4, strips, struct.pack("<I", offsets_at)),
        (277, 3, 1, struct.pack("<H", 1)),
        (278, 4, 1, struct.pack("<I", 1)),
        (279, 4, strips, struct.pack("<I", counts_at)),
    ]
    tables = struct.pack("<I", pixel_at) * strips + struct.pack("<I", 1) * strips
    return _tiff(1, strips, entries, tables + b"\x80")


def deep_tiff(kind: str, width: int = 7000, height: int = 7000) -> bytes:
    """A 49 MP 32-bit TIFF, `kind` "float" or "int32", deflated, every strip the same one.

    Each row is a left-to-right ramp (float 0 -> 1; int 0 -> 65535), so the picture's
    centre is mid-grey. ~10 KB on disk, 196 MB of samples.
    """
    rows = 256
    ramp = np.linspace(0, 1, width, dtype=np.float32) if kind == "float" else np.linspace(0, 65535, width)
    row = ramp.astype("<f4") if kind == "float" else ramp.astype("<i4")
    strip = zlib.compress(np.tile(row, (rows, 1)).tobytes(), 9)
    strips = (height + rows - 1) // rows
    data_at = _tiff_data_at(11)
    offsets_at, counts_at = data_at, data_at + 4 * strips
    strip_at = counts_at + 4 * strips
    entries = [
        (256, 4, 1, struct.pack("<I", width)),
        (257, 4, 1, struct.pack("<I", height)),
        (258, 3, 1, struct.pack("<H", 32)),
        (259, 3, 1, struct.pack("<H", 8)),  # Adobe deflate
        (262, 3, 1, struct.pack("<H", 1)),
        (273, 4, strips, struct.pack("<I", offsets_at)),
        (277, 3, 1, struct.pack("<H", 1)),
        (278, 4, 1, struct.pack("<I", rows)),
        (279, 4, strips, struct.pack("<I", counts_at)),
        (284, 3, 1, struct.pack("<H", 1)),
        (339, 3, 1, struct.pack("<H", 3 if kind == "float" else 2)),  # SampleFormat
    ]
    tables = struct.pack("<I", strip_at) * strips + struct.pack("<I", len(strip)) * strips
    return _tiff(width, height, entries, tables + strip)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def deep_png(width: int = 7000, height: int = 7000) -> bytes:
    """A 49 MP 16-bit grey PNG, a left-to-right ramp 0 -> 65535 (~60 KB: every row after the
    first is filtered "Up", so it is all zeros)."""
    ramp = np.linspace(0, 65535, width).astype(">u2").tobytes()
    packer = zlib.compressobj(9)
    body = [packer.compress(b"\x00" + ramp)]
    zero_row = b"\x02" + bytes(2 * width)
    body += [packer.compress(zero_row) for _ in range(height - 1)]
    body.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(body))
        + _png_chunk(b"IEND", b"")
    )


def negative_width_bmp() -> bytes:
    """A BMP whose header says -64 pixels wide."""
    data = bytearray(encode(solid((10, 20, 30)), "BMP"))
    struct.pack_into("<i", data, 18, -64)
    return bytes(data)


def _exif(entries: list[tuple[int, int, int, bytes]], extra: bytes = b"") -> bytes:
    """An APP1 EXIF payload: one IFD of (tag, type, count, value-or-offset) entries, then `extra`."""
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00\x00\x00\x00" + extra


def _exif_extra_at(entry_count: int) -> int:
    return 8 + 2 + 12 * entry_count + 4


def malformed_exif_jpegs() -> dict[str, bytes]:
    """The rotated test JPEG (stored 80 x 40, left red, right blue) with broken EXIF blocks.

    Each must decode: the orientation is applied when it can be read as 2..8,
    otherwise the picture is used as stored.
    """
    stored = Image.new("RGB", (80, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 40))
    orientation_6 = (0x0112, 3, 1, struct.pack("<H", 6))
    rational_at = _exif_extra_at(2)
    blocks = {
        # XResolution as a signed rational -1/0, next to a valid orientation
        "rational-minus-one-over-zero": _exif(
            [orientation_6, (0x011A, 10, 1, struct.pack("<I", rational_at))], struct.pack("<ii", -1, 0)
        ),
        "orientation-out-of-range": _exif([(0x0112, 3, 1, struct.pack("<H", 9))]),
        "orientation-65535": _exif([(0x0112, 3, 1, struct.pack("<H", 65535))]),
        "orientation-as-text": _exif([(0x0112, 2, 2, b"6\x00")]),
        "orientation-as-rational": _exif(
            [(0x0112, 5, 1, struct.pack("<I", _exif_extra_at(1)))], struct.pack("<II", 6, 1)
        ),
        "orientation-count-overflows": _exif([(0x0112, 3, 0x7FFFFFFF, struct.pack("<I", 4096))]),
        "ifd-pointer-past-the-end": b"Exif\x00\x00II*\x00" + struct.pack("<I", 0x7FFFFFF0),
        "exif-ifd-loop": _exif([orientation_6, (0x8769, 4, 1, struct.pack("<I", 8))]),
        "gps-ifd-garbage": _exif([orientation_6, (0x8825, 4, 1, struct.pack("<I", 3))]),
    }
    return {name: encode(stored, "JPEG", quality=95, exif=block) for name, block in blocks.items()}


def colour_key_pngs() -> dict[str, bytes]:
    """PNGs whose left half is made transparent by a tRNS colour key (or a palette entry),
    right half opaque: RGB, L, I;16 and palette."""
    rgb = Image.new("RGB", (64, 48), (10, 200, 30))
    rgb.paste((200, 30, 10), (32, 0, 64, 48))
    grey = Image.new("L", (64, 48), 77)
    grey.paste(180, (32, 0, 64, 48))
    deep = np.full((48, 64), 1234, dtype=np.uint16)
    deep[:, 32:] = 40000
    palette = rgb.quantize(2)
    left_index = palette.getpixel((0, 0))
    return {
        "rgb-trns": encode(rgb, "PNG", transparency=(10, 200, 30)),
        "grey-trns": encode(grey, "PNG", transparency=77),
        "16-bit-grey-trns": encode(Image.fromarray(deep), "PNG", transparency=1234),
        "palette-transparency": encode(palette, "PNG", transparency=left_index),
    }


#: The right half of each `colour_key_pngs` picture, which stays opaque.
COLOUR_KEY_RIGHT = {
    "rgb-trns": (200, 30, 10),
    "grey-trns": (180, 180, 180),
    "16-bit-grey-trns": (156, 156, 156),  # round(40000 / 65535 * 255)
    "palette-transparency": (200, 30, 10),
}


def big_progressive_jpeg(side: int = 7000) -> bytes:
    """A flat 49 MP progressive JPEG (~190 KB): libjpeg keeps every coefficient of it in memory."""
    return encode(Image.new("L", (side, side), 100), "JPEG", progressive=True, quality=50)


# ------------------------------------------------------------------------------------------------
# AVIF and HEIC/HEIF (ISO base media files): photos with an EXIF orientation, and their hostile
# cousins (cut short, a huge declared size, many items), built from a small valid file.


def as_phone_saves(upright: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """`upright` stored turned a quarter to the left with EXIF orientation 6 ("rotate 90°
    clockwise to display"), as a phone saves a portrait shot, encoded as `fmt` (AVIF, HEIF,
    JPEG). pillow-heif's encoder writes the orientation as HEIF's rotation (`irot`), Pillow's
    AVIF encoder as AVIF's; either way a viewer shows `upright`."""
    import pillow_heif  # noqa: F401 - registers the HEIF encoder with Pillow

    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    return encode(stored, fmt, quality=quality, exif=exif.tobytes())


def red_over_blue() -> Image.Image:
    """A 40 x 80 portrait, red on top, blue below: which way up it was decoded shows at a glance."""
    picture = Image.new("RGB", (40, 80), (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, 40, 40))
    return picture


def isobmff_photo(fmt: str, size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A small noisy AVIF or HEIF picture (the seed of the hostile cousins below)."""
    import pillow_heif  # noqa: F401 - registers the HEIF encoder with Pillow

    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), fmt, quality=80)


def _isobmff_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each box in data[start:end] (32-bit sizes: small files only)."""
    end = len(data) if end is None else end
    boxes = []
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        boxes.append((kind, start, start + size))
        start += size
    return boxes


def _isobmff_box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _primary_extent(data: bytes) -> tuple[int, int]:
    """(file offset, length) of the only item's data, from the `iloc` box (version 0 or 1)."""
    (meta,) = [(s, e) for kind, s, e in _isobmff_boxes(data) if kind == b"meta"]
    (iloc,) = [s for kind, s, _ in _isobmff_boxes(data, meta[0] + 12, meta[1]) if kind == b"iloc"]
    version = data[iloc + 8]
    sizes, more = data[iloc + 12], data[iloc + 13]
    offset_size, length_size, base_size = sizes >> 4, sizes & 15, more >> 4
    at = iloc + 14 + 2 + 2  # item_count (16-bit), item_ID
    at += 2 if version == 1 else 0  # construction_method
    at += 2  # data_reference_index

    def number(size: int) -> int:
        nonlocal at
        value = int.from_bytes(data[at : at + size], "big") if size else 0
        at += size
        return value

    base = number(base_size)
    at += 2  # extent_count: 1
    offset = number(offset_size)
    return base + offset, number(length_size)


def isobmff_with_items(data: bytes, extra: int) -> bytes:
    """`data` (one AVIF/HEIF picture) with `extra` more items, each a 1-byte `mime` item.

    Rebuilt as ftyp, meta (hdlr, pitm, iloc and iinf for every item, the original iprp),
    mdat: the picture itself stays valid, and a parser walks every item."""
    boxes = {kind: data[s:e] for kind, s, e in _isobmff_boxes(data)}
    meta_at = data.index(boxes[b"meta"])
    children = {kind: data[s:e] for kind, s, e in _isobmff_boxes(data, meta_at + 12, meta_at + len(boxes[b"meta"]))}
    offset, length = _primary_extent(data)
    primary_type = data[data.index(b"infe") + 12 : data.index(b"infe") + 16]
    ids = range(2, 2 + extra)
    infes = [_isobmff_box(b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", 1, 0) + primary_type + b"\x00")]
    infes += [
        _isobmff_box(b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", item, 0) + b"mime\x00text/plain\x00")
        for item in ids
    ]
    iinf = _isobmff_box(b"iinf", b"\x00\x00\x00\x00" + struct.pack(">H", len(infes)) + b"".join(infes))

    def iloc_at(mdat_data: int) -> bytes:
        entries = struct.pack(">HHHII", 1, 0, 1, mdat_data, length) + b"".join(
            struct.pack(">HHHII", item, 0, 1, mdat_data + length, 1) for item in ids
        )
        return _isobmff_box(b"iloc", b"\x00\x00\x00\x00\x44\x00" + struct.pack(">H", 1 + extra) + entries)

    def meta_with(iloc: bytes) -> bytes:
        inner = children[b"hdlr"] + children[b"pitm"] + iloc + iinf + children[b"iprp"]
        return _isobmff_box(b"meta", b"\x00\x00\x00\x00" + inner)

    mdat_data = len(boxes[b"ftyp"]) + len(meta_with(iloc_at(0))) + 8
    mdat = _isobmff_box(b"mdat", data[offset : offset + length] + b"x")
    return boxes[b"ftyp"] + meta_with(iloc_at(mdat_data)) + mdat


def isobmff_declaring(data: bytes, width: int, height: int) -> bytes:
    """`data` whose `ispe` (the picture's size) and `clap` (its crop, HEIF) declare `width` x `height`."""
    patched = bytearray(data)
    at = patched.index(b"ispe") - 4
    struct.pack_into(">II", patched, at + 12, width, height)
    if b"clap" in patched:
        at = patched.index(b"clap") - 4
        struct.pack_into(">IIII", patched, at + 8, width, 1, height, 1)
    return bytes(patched)


def isobmff_cousins(fmt: str) -> dict[str, bytes]:
    """Hostile AVIF or HEIF files: each must be refused in one line (or stopped by the budget)."""
    photo = isobmff_photo(fmt)
    return {
        "header-only": photo[:100],
        "cut-in-half": photo[: len(photo) // 2],
        "last-bytes-missing": photo[:-10],
        "declares-12000x10000": isobmff_declaring(photo, 12_000, 10_000),
        "declares-60000x60000": isobmff_declaring(photo, 60_000, 60_000),
        "declares-4294967295-square": isobmff_declaring(photo, 0xFFFFFFFF, 0xFFFFFFFF),
        "60000-items": isobmff_with_items(photo, 60_000),
    }


#: cousin -> what its one line says, whichever of the two formats it is
COUSIN_REASON = {
    "header-only": "truncated",
    "cut-in-half": "truncated",
    "last-bytes-missing": "truncated",
    "declares-12000x10000": "too large: 12000 x 10000 pixels",
    "declares-60000x60000": "too large: 60000 x 60000 pixels",
    "declares-4294967295-square": "impossible size",
    "60000-items": "too many parts (60,001 items, at most 1,000)",
}
#: A seed whose upright picture CLIP (the tiny model) calls a blue triangle and whose stored,
#: quarter-turned one it calls a blue square: orientation decides the answer.
UPRIGHT_LABEL, UPRIGHT_SEED, STORED_LABEL = "blue triangle", 3, "blue square"


def upright_shape() -> Image.Image:
    return render(UPRIGHT_LABEL, np.random.default_rng(UPRIGHT_SEED))
