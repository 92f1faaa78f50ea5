"""AVIF and HEIC/HEIF: sniffed by content, decoded upright, and their hostile cousins refused in one line.

The files are made here (Pillow's AVIF encoder, pillow-heif's HEIF encoder, `tests.badimages`).
Lossy codecs: a decoded picture is compared with its source within a few grey levels, and
through CLIP with a PNG of the very pixels decoded (equal to 1e-4).
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from bot.engine.decoding import ImageWorkers
from bot.engine.filetypes import image_format, isobmff_header
from bot.engine.images import MAX_ITEMS, ORIENTATION, decode_image
from bot.engine.preparation import PrepareSpec
from bot.errors import ImageError
from bot.service import ClipService
from tests.support.badimages import (
    COUSIN_REASON,
    STORED_LABEL,
    UPRIGHT_LABEL,
    as_phone_saves,
    encode,
    isobmff_cousins,
    isobmff_photo,
    isobmff_with_items,
    red_over_blue,
    upright_shape,
)
from tests.support.shapes import CLASSES

MAX_PIXELS = 50_000_000
FORMATS = ("AVIF", "HEIF")


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniffed_by_content_whatever_the_brand_order(fmt: str) -> None:
    data = isobmff_photo(fmt)
    assert image_format(data) == fmt
    generic = bytearray(data)  # major brand "mif1", the format only among the compatible brands
    generic[8:12] = b"mif1"
    assert image_format(bytes(generic)) == fmt
    assert image_format(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") is None, "an MP4 video"
    assert decode_image(bytes(generic), max_pixels=MAX_PIXELS).size == (64, 48)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_phone_photo_decodes_upright(fmt: str) -> None:
    image = decode_image(as_phone_saves(red_over_blue(), fmt), max_pixels=MAX_PIXELS)
    assert image.mode == "RGB" and image.size == (40, 80), "stored landscape, displayed portrait"
    pixels = np.asarray(image).astype(int)
    np.testing.assert_allclose(pixels[10, 20], (255, 0, 0), atol=12)
    np.testing.assert_allclose(pixels[70, 20], (0, 0, 255), atol=12)


#: A transpose's inverse: what a camera stores so that the EXIF orientation's transpose shows the picture.
INVERSE = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_orientation_decodes_upright(fmt: str, orientation: int) -> None:
    """Each of EXIF's eight orientations, as the encoder writes it into the file (HEIF's and AVIF's
    own rotation and mirror), shows the picture as it was taken: its corners are told apart."""
    upright = Image.new("RGB", (48, 32), (255, 255, 255))
    corners = {(0, 0): (255, 0, 0), (40, 0): (0, 160, 0), (0, 24): (0, 0, 255)}
    for (left, top), colour in corners.items():
        upright.paste(colour, (left, top, left + 8, top + 8))
    stored = upright
    if orientation != 1:
        shows = ORIENTATION[orientation]
        stored = upright.transpose(INVERSE.get(shows, shows))
    exif = Image.Exif()
    exif[0x0112] = orientation
    pixels = np.asarray(decode_image(encode(stored, fmt, quality=95, exif=exif.tobytes()), max_pixels=MAX_PIXELS))
    assert pixels.shape == (32, 48, 3), "as taken, not as stored"
    for (left, top), colour in corners.items():
        np.testing.assert_allclose(pixels[top + 4, left + 4].astype(int), colour, atol=24)


@pytest.mark.parametrize("fmt", FORMATS)
def test_transparency_is_shown_on_white(fmt: str) -> None:
    picture = Image.new("RGBA", (64, 48), (255, 0, 0, 0))
    picture.paste((0, 0, 255, 255), (32, 0, 64, 48))
    pixels = np.asarray(decode_image(encode(picture, fmt, quality=90), max_pixels=MAX_PIXELS)).astype(int)
    np.testing.assert_allclose(pixels[24, 8], (255, 255, 255), atol=8)
    np.testing.assert_allclose(pixels[24, 56], (0, 0, 255), atol=12)


def test_an_animated_avif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "AVIF", save_all=True, append_images=frames[1:], duration=100, quality=90)
    np.testing.assert_allclose(np.asarray(decode_image(data, max_pixels=MAX_PIXELS))[24, 32], (255, 0, 0), atol=12)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(COUSIN_REASON))
def test_a_hostile_cousin_is_refused_in_one_line(fmt: str, name: str) -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(isobmff_cousins(fmt)[name], max_pixels=MAX_PIXELS)
    message = str(caught.value)
    assert COUSIN_REASON[name] in message and "\n" not in message and len(message) < 200, message


@pytest.mark.parametrize("fmt", FORMATS)
def test_items_up_to_the_limit_are_fine(fmt: str) -> None:
    """The limit refuses files built to stall a parser, not a photo with a few extra items."""
    data = isobmff_with_items(isobmff_photo(fmt), MAX_ITEMS - 1)
    assert isobmff_header(data).items == MAX_ITEMS
    assert decode_image(data, max_pixels=MAX_PIXELS).size == (64, 48)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_cousins_through_the_workers_each_get_one_line_and_the_worker_keeps_serving(fmt: str) -> None:
    workers = ImageWorkers(1, timeout_s=2.0, memory_mb=1024)
    spec = PrepareSpec(crop=224, max_pixels=MAX_PIXELS)
    try:
        for name, data in isobmff_cousins(fmt).items():
            with pytest.raises(ImageError) as caught:
                await asyncio.wrap_future(workers.submit(data, spec))
            assert COUSIN_REASON[name] in str(caught.value), (name, str(caught.value))
        prepared = await asyncio.wrap_future(workers.submit(isobmff_photo(fmt), spec))
        assert prepared.array().shape == (224, 224, 3)
        assert workers.replaced == 0, "refused from the header, not stopped by the budget"
    finally:
        workers.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_decoding_is_total_over_mutated_files(fmt: str) -> None:
    """400 copies of a small AVIF/HEIF picture with 1-5 random bytes changed: each decodes to
    RGB or is refused with an `ImageError` (in-process: a crash here would end the test run)."""
    import warnings

    rng = np.random.default_rng(1)
    seed = isobmff_photo(fmt, size=(32, 24))
    outcomes = {"decoded": 0, "refused": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(400):
            mutant = bytearray(seed)
            for _ in range(int(rng.integers(1, 6))):
                mutant[int(rng.integers(0, len(mutant)))] = int(rng.integers(0, 256))
            try:
                assert decode_image(bytes(mutant), max_pixels=MAX_PIXELS).mode == "RGB"
                outcomes["decoded"] += 1
            except ImageError as exc:
                assert "\n" not in str(exc)
                outcomes["refused"] += 1
    assert outcomes["decoded"] > 20 and outcomes["refused"] > 20, outcomes


@pytest.mark.parametrize("fmt", FORMATS)
async def test_classified_upright_and_equal_to_a_png_of_the_decoded_pixels(service: ClipService, fmt: str) -> None:
    upright = upright_shape()
    data = as_phone_saves(upright, fmt)
    ranking = await service.classify(data, CLASSES, None)
    decoded_png = encode(decode_image(data, max_pixels=MAX_PIXELS), "PNG")
    same_pixels = await service.classify(decoded_png, CLASSES, None)
    stored = await service.classify(encode(upright.transpose(Image.Transpose.ROTATE_90), "PNG"), CLASSES, None)
    assert ranking.best.label == UPRIGHT_LABEL
    assert stored.best.label == STORED_LABEL, "the test can tell: unturned, it is another class"
    cosines = {s.label: s.cosine for s in same_pixels.scores}
    for score in ranking.scores:
        assert score.cosine == pytest.approx(cosines[score.label], abs=1e-4), score.label
    assert ranking.thumbnail is not None
    assert Image.open(io.BytesIO(ranking.thumbnail)).size == upright.size, "the thumbnail is upright too"
