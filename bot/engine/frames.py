"""Clips (MP4, WebM, MOV) and animations (GIF, WebP, APNG) as a few frames spread over their length.

Runs in a decode worker (`bot.engine.decoding`), inside its time and memory budget; the
engine embeds each frame like a still picture and averages them (`mean_of_frames`).

- Which frames: at most `FrameLimits.frames` (8 by default), the middles of as many equal
  parts of the clip: by timestamp for a video (`sample_times`: the frame on screen then),
  by frame index for an animation (`sample_indices`; GIF frame delays vary and are often
  wrong). A clip with fewer frames gives fewer. A video is first read by its key frames
  only (cheap: one decode per frame taken); when they give fewer than half the frames
  wanted (a short clip, sparse key frames), every frame is decoded up to each target if
  that stays within `FULL_DECODE_PIXELS`, else the key frames found are used.
- What is sniffed: the bytes (`bot.engine.filetypes.clip_format`, Pillow's own sniffing for
  animations), never the name; PyAV (FFmpeg) opens a video with the one demuxer its bytes
  call for and decodes only the codecs of `VIDEO_CODECS`, one thread each.
- Bounds, each refused in one line before or while decoding: frame size (`max_pixels`,
  from the header and again per frame), declared duration (`max_duration_s`), frames
  decoded (`max_frames_examined`, seeking counts what it decodes), the pixels an animation
  makes the decoder produce (`MAX_ANIMATION_PIXELS`: its frames decode in order), a stream
  that declares no length (decoded in order, kept frames thinned as it goes, refused once
  it runs past the duration), zero frames. The worker's time and memory budget bound the rest.
- Which way up: as the video's display matrix says (`_display_turn`): phones record portrait
  clips as landscape frames plus a rotation in the MP4/MOV track header.
- Only one full-size frame is held at a time: `take` turns each chosen frame into what
  the caller keeps (the model's crop) at once.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from bot.engine.filetypes import clip_format, image_format, runs_past_end
from bot.engine.images import TOO_COMPLEX, TRUNCATED, _check_size, _to_rgb
from bot.errors import ImageError

if TYPE_CHECKING:  # the decode workers import this module: it stays light (no pydantic)
    from bot.config import Settings

T = TypeVar("T")

#: Decoders PyAV may use on an upload: what phones, browsers and screen recorders write.
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "libvpx", "libvpx-vp9", "mpeg4"})
#: FFmpeg's demuxer for each container `clip_format` names (MP4 and MOV share one).
DEMUXERS = {"MP4": "mov", "WEBM": "matroska"}
#: Formats whose file may hold an animation, decoded frame by frame.
ANIMATION_FORMATS = ("GIF", "WEBP", "PNG")
#: Pixels an animation's sampled frames make the decoder produce in all: its frames decode in
#: order, so reaching the last sample decodes every frame before it (a GIF of thousands of huge
#: frames is a decompression bomb even when each frame is within `max_pixels`).
MAX_ANIMATION_PIXELS = 400_000_000
#: Key frames too sparse for the frames wanted: every frame is decoded only when that makes at most
#: this many pixels (a few seconds of 1080p); a longer clip keeps the key frames it has.
FULL_DECODE_PIXELS = 600_000_000
#: A video is decoded in order up to a target at most this far ahead; farther, it seeks (to the
#: key frame before the target, then decodes forward).
SEEK_GAP_S = 2.0

NO_FRAMES = "The clip has no frames I can read."
CORRUPT_CLIP = "The clip is corrupt and could not be decoded."
#: An MP4 cut before its index (`moov`, written last), or a file that ends after its header.
TRUNCATED_CLIP = "The clip has no frames I can read (the upload looks cut short, or empty)."


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """How many frames to use, and the bounds on a clip."""

    frames: int = 8
    max_pixels: int = 50_000_000
    max_duration_s: float = 600.0
    max_frames_examined: int = 3000


def frame_limits(settings: Settings) -> FrameLimits:
    """The clip bounds `settings` set."""
    return FrameLimits(
        frames=settings.clip_frames,
        max_pixels=settings.max_image_pixels,
        max_duration_s=settings.clip_max_duration_s,
        max_frames_examined=settings.clip_max_frames_examined,
    )


def sample_indices(count: int, wanted: int) -> list[int]:
    """`wanted` frame indices of `count`, the middles of equal parts (all of them when fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int((part + 0.5) * count / wanted) for part in range(wanted)})


def sample_times(start: float, duration: float, wanted: int) -> list[float]:
    """`wanted` times in [start, start + duration), the middles of equal parts."""
    return [start + (part + 0.5) * duration / wanted for part in range(wanted)]


def mean_of_frames(rows: np.ndarray) -> np.ndarray:
    """Frames' embeddings as one: each L2-normalised, averaged, renormalised (a single row as it is)."""
    if len(rows) == 1:
        return np.asarray(rows[0], dtype=np.float32)
    units = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    mean = units.mean(axis=0)
    return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-12), dtype=np.float32)


def is_moving(data: bytes) -> bool:
    """Whether `data` is a clip, or may be an animation (`decode_frames` tells for sure)."""
    return clip_format(data) is not None or image_format(data) in ANIMATION_FORMATS


def decode_frames(data: bytes, limits: FrameLimits, take: Callable[[Image.Image], T]) -> list[T] | None:
    """`take` of each chosen frame (upright RGB), in order; None when `data` is a still picture."""
    container = clip_format(data)
    if container is not None:
        return _video_frames(data, DEMUXERS[container], limits, take)
    if image_format(data) not in ANIMATION_FORMATS:
        return None
    try:
        image = Image.open(io.BytesIO(data), formats=ANIMATION_FORMATS)
        if not getattr(image, "is_animated", False):
            return None
    except MemoryError:
        raise
    except Exception:  # not even a readable header: the still picture's decoder says why
        return None
    try:
        return _animation_frames(image, limits, take)
    except (ImageError, MemoryError):
        raise
    except Exception as exc:
        if "truncated" in str(exc).lower():
            raise ImageError(TRUNCATED) from None
        raise ImageError(f"The animation is corrupt and could not be decoded ({type(exc).__name__}).") from None


# ------------------------------------------------------------------------- animations
def _animation_frames(image: Image.Image, limits: FrameLimits, take: Callable[[Image.Image], T]) -> list[T]:
    """Frames of a GIF, WebP or APNG, by index; the decoder's total work bounded first."""
    _check_size(image.size, limits.max_pixels)
    count: int = getattr(image, "n_frames", 1)  # GIF: a walk over the blocks, nothing decoded
    chosen = sample_indices(count, limits.frames)
    decoded = chosen[-1] + 1
    width, height = image.size
    if decoded > limits.max_frames_examined:
        raise ImageError(
            f"The animation has too many frames ({count:,}; at most {limits.max_frames_examined:,} examined)."
        )
    if decoded * width * height > MAX_ANIMATION_PIXELS:
        raise ImageError(
            f"The animation is too large to sample: {count:,} frames of {width} x {height} pixels "
            f"(at most {MAX_ANIMATION_PIXELS / 1e6:g} megapixels decoded per file)."
        )
    taken = []
    for index in chosen:
        image.seek(index)
        _check_size(image.size, limits.max_pixels)
        image.load()
        taken.append(take(_to_rgb(image)))
    return taken


# ----------------------------------------------------------------------------- videos
def _video_frames(data: bytes, demuxer: str, limits: FrameLimits, take: Callable[[Image.Image], T]) -> list[T]:
    import av  # loaded on the first clip only: its libraries count against the worker's memory cap

    try:
        container = av.open(io.BytesIO(data), format=demuxer, metadata_errors="ignore")
        try:
            return _VideoSampler(container, limits, take).run()
        finally:
            container.close()
    except (ImageError, MemoryError):
        raise
    except av.FFmpegError as exc:
        reason = str(exc).lower()
        cut = demuxer == DEMUXERS["MP4"] and runs_past_end(data)
        if cut or "moov atom not found" in reason or "end of file" in reason:
            raise ImageError(TRUNCATED_CLIP) from None
        if "cannot allocate memory" in reason:
            raise ImageError(TOO_COMPLEX) from None
        raise ImageError(CORRUPT_CLIP) from None


class _VideoSampler:
    """One video stream's chosen frames: seeks for a declared length, a thinning reservoir without."""

    def __init__(self, container: Any, limits: FrameLimits, take: Callable[[Image.Image], Any]) -> None:
        if not container.streams:  # an MP4 cut before its index, or with an empty track
            raise ImageError(TRUNCATED_CLIP)
        if not container.streams.video:
            raise ImageError("The clip has no video in it.")
        self.container = container
        self.stream = stream = container.streams.video[0]
        self.limits = limits
        self.take = take
        self.examined = 0
        context = stream.codec_context
        if context.name not in VIDEO_CODECS:
            raise ImageError(
                f"The clip's video is {context.name or 'in an unknown codec'}; "
                "I decode H.264, HEVC, VP8, VP9, AV1 and MPEG-4 clips."
            )
        if context.width or context.height:
            _check_frame_size((context.width, context.height), limits.max_pixels)
        context.thread_count = 1  # one upload per worker; every thread's stack counts against its cap
        self.time_base = float(stream.time_base) if stream.time_base else None

    def run(self) -> list[Any]:
        start, duration = self._span()
        if duration is None:
            taken = self._unbounded()
        else:
            targets = sample_times(start, duration, self.limits.frames)
            taken = self._key_frames(targets)
            sparse = len(taken) < (self.limits.frames + 1) // 2
            if sparse and (not taken or self._decoded_pixels(duration) <= FULL_DECODE_PIXELS):
                self.stream.codec_context.skip_frame = "DEFAULT"
                self.container.seek(0, stream=self.stream, backward=True)
                taken = self._seeking(targets)
        if not taken:
            raise ImageError(NO_FRAMES)
        return taken

    def _decoded_pixels(self, duration: float) -> float:
        """About how many pixels decoding every frame would make (30 frames a second when unknown)."""
        rate = self.stream.average_rate or self.stream.guessed_rate or 30
        context = self.stream.codec_context
        return duration * float(rate) * max(context.width * context.height, 1)

    def _key_frames(self, targets: list[float]) -> list[Any]:
        """The key frame on screen at each target, decoding key frames only: a long clip's frames
        cost a decode each instead of a group of pictures each (hundreds of frames apart)."""
        self.stream.codec_context.skip_frame = "NONKEY"
        try:
            return self._seeking(targets)
        except ImageError as exc:  # a key frame past the bounds; the full pass says so
            if "too many frames" in str(exc):
                raise
            return []

    def _span(self) -> tuple[float, float | None]:
        """(start, duration) in seconds as declared; duration None when not declared."""
        stream, container = self.stream, self.container
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None and self.time_base else 0.0
        if stream.duration and self.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        else:
            return start, None
        if duration > self.limits.max_duration_s:
            longest = _minutes(self.limits.max_duration_s)
            raise ImageError(f"The clip is too long: {_minutes(duration)} (at most {longest}).")
        return start, duration if duration > 0 else None

    def _frames(self) -> Any:
        """Decoded frames in order, each counted and checked (time past the bound refused)."""
        import av

        try:
            yield from self._checked(self.container.decode(self.stream))
        except av.EOFError:  # the data ends (a cut upload, an empty track): what was decoded stands
            return

    def _checked(self, decoded: Any) -> Any:
        for frame in decoded:
            self.examined += 1
            if self.examined > self.limits.max_frames_examined:
                raise ImageError(
                    f"The clip has too many frames to sample (over {self.limits.max_frames_examined:,} decoded)."
                )
            _check_frame_size((frame.width, frame.height), self.limits.max_pixels)
            if frame.time is not None and frame.time > self.limits.max_duration_s:
                raise ImageError(f"The clip runs past {_minutes(self.limits.max_duration_s)}, the longest I take.")
            yield frame

    def _seeking(self, targets: list[float]) -> list[Any]:
        """The frame on screen at each target (the last one from a target past the end), each once."""
        taken: list[Any] = []
        frames = self._frames()
        shown: Any = None  # the frame on screen at the latest target
        ahead: Any = None  # a decoded frame past the latest target, not yet on screen
        now = float("-inf")
        used: set[float] = set()
        for target in targets:
            if target - now > SEEK_GAP_S and self.time_base:
                self.container.seek(int(target / self.time_base), stream=self.stream, backward=True)
                frames, shown, ahead = self._frames(), None, None
            while (frame := ahead if ahead is not None else next(frames, None)) is not None:
                ahead = None
                if frame.time is None:  # no timestamp: taken as it comes
                    shown = frame
                    break
                now = frame.time
                if frame.time <= target:
                    shown = frame
                    continue
                if shown is None:  # the first frame comes after the target
                    shown = frame
                else:
                    ahead = frame
                break
            if shown is None:
                break
            key = shown.time if shown.time is not None else float(len(taken))
            if key not in used:
                used.add(key)
                taken.append(self.take(_upright(shown)))
        return taken

    def _unbounded(self) -> list[Any]:
        """No declared length: decode in order keeping every `stride`-th frame, doubling the stride
        (and dropping every other kept frame) whenever twice the frames wanted are kept."""
        kept: list[Any] = []
        stride = 1
        for index, frame in enumerate(self._frames()):
            if index % stride:
                continue
            kept.append(self.take(_upright(frame)))
            if len(kept) >= 2 * self.limits.frames:
                kept, stride = kept[::2], stride * 2
        return [kept[i] for i in sample_indices(len(kept), self.limits.frames)]


#: How a player shows a frame, by the signs of its display matrix's rotation part (FFmpeg's
#: `AV_FRAME_DATA_DISPLAYMATRIX`, read from an MP4/MOV track header's matrix: a stored pixel
#: (x, y), y down, is shown at (a x + c y, b x + d y)): (a, d) for a frame kept upright or
#: flipped, (b, c) for one turned a quarter. The same choices as fftools' autorotate.
_DISPLAY_TURNS = {
    ("ad", 1, -1): Image.Transpose.FLIP_TOP_BOTTOM,
    ("ad", -1, 1): Image.Transpose.FLIP_LEFT_RIGHT,
    ("ad", -1, -1): Image.Transpose.ROTATE_180,
    ("bc", 1, -1): Image.Transpose.ROTATE_270,  # 90° clockwise: an iPhone held upright (rotation -90)
    ("bc", -1, 1): Image.Transpose.ROTATE_90,  # 90° counter-clockwise (rotation 90)
    ("bc", 1, 1): Image.Transpose.TRANSPOSE,  # mirrored across the diagonal
    ("bc", -1, -1): Image.Transpose.TRANSVERSE,
}


def _upright(frame: Any) -> Image.Image:
    """A video frame as an RGB picture, turned (or mirrored) as its display matrix says: phones
    record portrait clips with the sensor's landscape frames and say so in the container."""
    image: Image.Image = frame.to_image()
    turn = _display_turn(frame)
    return image if turn is None else image.transpose(turn)


def _display_turn(frame: Any) -> Image.Transpose | None:
    """What shows `frame` as a player would; None: as stored (no matrix, or not a right angle,
    within about a degree: fftools' autorotate leaves those to its slow `rotate` filter)."""
    side_data = frame.side_data.get("DISPLAYMATRIX")
    if side_data is None:
        return None
    a, b, _, c, d = np.frombuffer(bytes(side_data), dtype=np.int32, count=5).tolist()  # a b u c d v x y w
    kept, quarter = abs(a) + abs(d), abs(b) + abs(c)
    if quarter * 64 <= kept:
        return _DISPLAY_TURNS.get(("ad", _sign(a), _sign(d)))
    if kept * 64 <= quarter:
        return _DISPLAY_TURNS.get(("bc", _sign(b), _sign(c)))
    return None


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _check_frame_size(size: tuple[int, int], max_pixels: int) -> None:
    """A frame's size within the stills' bound, said of a clip."""
    try:
        _check_size(size, max_pixels)
    except ImageError as exc:
        raise ImageError(str(exc).replace("The image", "The clip's frame")) from None


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{seconds:.3g} s"
