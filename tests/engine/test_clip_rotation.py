"""Phone clips recorded sideways: their frames are used the way a player shows them.

Phones store a portrait clip as the sensor's landscape frames plus a display matrix in the
MP4/MOV track header (`tests.support.clips.PHONE_TURNS`). The test picture differs under every
turn and mirror (green top-left corner, red top-right, blue below), so a frame turned the wrong
way, or not at all, fails; the tiny CLIP's answer (through the real decode workers) shows the
same for classification.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from bot.engine.preparation import PrepareSpec, prepare
from bot.service import ClipService
from tests.support import clips
from tests.support.badimages import STORED_LABEL, UPRIGHT_LABEL, red_over_blue, upright_shape
from tests.support.shapes import CLASSES

#: Mean difference per channel allowed for H.264's loss (a wrong turn differs by over 100).
H264_TOLERANCE = 12


def corner_marked() -> Image.Image:
    """Red over blue (40 x 80) with the top-left corner green: no turn or mirror leaves it unchanged."""
    picture = red_over_blue()
    picture.paste((0, 255, 0), (0, 0, 20, 20))
    return picture


def first_frame(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data), "r") as container:
        frame = next(container.decode(video=0))
    return frame


def test_the_helper_writes_the_matrices_phones_do() -> None:
    """Read back as ffprobe reads an iPhone's portrait clip ("rotation of -90.00 degrees"): the
    frames stored landscape, PyAV's counter-clockwise rotation -90 (90 for the other way)."""
    picture = corner_marked()
    for container in ("mp4", "mov"):
        iphone = first_frame(clips.phone_clip(picture, "clockwise", container))
        assert (iphone.width, iphone.height) == (80, 40) and iphone.rotation == -90, container
    assert first_frame(clips.phone_clip(picture, "counter-clockwise")).rotation == 90
    assert abs(first_frame(clips.phone_clip(picture, "half-turn")).rotation) == 180
    assert first_frame(clips.encode_clip([picture] * 2, codec="libx264")).rotation == 0, "no matrix: as stored"


def assert_upright(frame: np.ndarray, upright: np.ndarray, name: str) -> None:
    assert frame.shape == upright.shape, f"{name}: decoded {frame.shape[1]} x {frame.shape[0]}, not portrait"
    difference = np.abs(frame.astype(int) - upright.astype(int)).mean()
    assert difference < H264_TOLERANCE, f"{name}: differs by {difference:.0f} a channel from the upright picture"
    top_left, top_right, bottom = frame[5, 5], frame[5, 35], frame[70, 20]
    assert top_left[1] > 200 and top_right[0] > 200 and bottom[2] > 200, (name, top_left, top_right, bottom)


#: (turn, container, codec): an iPhone's portrait clip as MP4 and MOV, in H.264 and HEVC; the rest in H.264.
PHONE_CLIPS = [("clockwise", "mp4", "libx264"), ("clockwise", "mov", "libx264"), ("clockwise", "mov", "libx265")]
PHONE_CLIPS += [(turn, "mp4", "libx264") for turn in clips.PHONE_TURNS if turn != "clockwise"]


@pytest.mark.parametrize("turn, container, codec", PHONE_CLIPS)
def test_a_phone_clip_is_decoded_as_a_player_shows_it(turn: str, container: str, codec: str) -> None:
    upright = corner_marked()
    data = clips.phone_clip(upright, turn, container, codec=codec)
    prepared = prepare(data, PrepareSpec(crop=None, max_pixels=10**8))
    assert prepared.frames == 4
    for frame in prepared.arrays():
        assert_upright(frame, np.asarray(upright), f"{turn} {container} {codec}")


def test_an_unturned_clip_is_decoded_as_stored() -> None:
    """The same sideways frames without a matrix stay sideways (a clip filmed lying down is one)."""
    stored = corner_marked().transpose(Image.Transpose.ROTATE_90)
    prepared = prepare(clips.encode_clip([stored] * 2, codec="libx264"), PrepareSpec(crop=None, max_pixels=10**8))
    assert prepared.arrays().shape == (2, 40, 80, 3)


async def test_an_iphone_portrait_clip_is_classified_upright(service: ClipService) -> None:
    """Through the decode workers and the tiny CLIP: the upright picture's class; the same frames
    without the matrix are another class, so the answer depends on the turn."""
    upright = upright_shape().crop((0, 0, 256, 216))  # even sides for H.264's 4:2:0 chroma
    iphone = clips.phone_clip(upright, "clockwise", "mov")
    unturned = clips.encode_clip([upright.transpose(Image.Transpose.ROTATE_90)] * 4, "mov", codec="libx264")
    ranking = await service.classify(iphone, CLASSES, None)
    assert ranking.best.label == UPRIGHT_LABEL and ranking.frames == (4,)
    stored = await service.classify(unturned, CLASSES, None)
    assert stored.best.label == STORED_LABEL, "the test can tell: unturned, it is another class"
