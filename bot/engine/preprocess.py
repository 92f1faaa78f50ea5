"""CLIP's image transform, fused into one resize and one table lookup.

inference's `Clip.clip_preprocess` is torchvision's Resize(n, bicubic) ->
CenterCrop(n) -> RGB -> ToTensor -> Normalize. Shortcuts, each measured:

- **Resize only what the crop keeps.** Resizing the whole picture and then
  cutting the sides off wastes the part of the resize that is thrown away (a
  quarter of it on a 4:3 photo), and an extreme aspect ratio (40000 x 2) would
  be resized to millions of pixels wide first. Pillow resizes just the source
  box that becomes the crop, with the same filter centred on the same points.
  A large picture is resized in two bands of rows, on two threads when the
  caller has a free one (`BANDED_MIN_PIXELS`).
- **ToTensor + Normalize as a lookup table.** An 8-bit sample has 256 possible
  values per channel; `(v / 255 - mean) / std` is computed once per value, in
  float32 exactly as torchvision does, so the lookup is bit-identical. It also
  keeps torch (and its OpenMP threads, which then compete with onnxruntime's)
  out of the request path.

Against the two-step torchvision transform the result differs by one 8-bit
rounding step in a few hundred of the 150,528 values (tested); the embeddings
match the seed's to 1e-4. A JPEG photo with a short side of 896 px or more
arrives decoded at a reduced DCT scale (`bot.engine.images.decode_upright`);
`resize_centre_crop` takes where the whole picture lies in its pixels (`area`), so
the crop is the one the full picture gets, and the tensor differs from the exact
path's by at most 0.02 on average (tested; see BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]

#: Source pixels (in the kept box) from which the resize runs as two bands of rows, so a
#: lone large photo uses two cores. Below it, one piece: handing half of a small resize to
#: another thread is slower, not faster (that thread wakes late and cold; figures in
#: BENCHMARKS.md, "What the design rests on"). Chosen by size, never by whether a helper is free, so
#: an image gets the same pixels alone or in a batch (two bands differ from one by a
#: rounding step here and there).
BANDED_MIN_PIXELS = 500_000


@dataclass(frozen=True)
class _Fused:
    size: int
    #: (3, 256) float32 when the steps after the crop are CLIP's ToTensor + Normalize.
    lut: np.ndarray | None
    #: Otherwise those steps, applied as they are.
    rest: tuple[Callable[[Any], Any], ...]


class ClipImageTransform:
    """`transform(image) -> float32 [1, 3, n, n]`, fused when the transform is CLIP's usual one."""

    def __init__(self, transform: Callable[[Image.Image], Any]) -> None:
        self._transform = transform
        self._fused = _fusable(transform)
        #: The square side the fused path produces, or None when it falls back to `transform`.
        self.size: int | None = self._fused.size if self._fused else None
        #: Whether ToTensor + Normalize run as a lookup table.
        self.lookup = self._fused is not None and self._fused.lut is not None

    def __call__(self, image: Image.Image, *, helper: Executor | None = None) -> np.ndarray:
        """The model's input for `image`; `helper` may resize half of a large one.

        Only pass a `helper` with a free worker: the caller waits for it.
        """
        fused = self._fused
        if fused is None:
            return np.asarray(self._transform(image), dtype=np.float32)[np.newaxis]
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return self.from_crop(np.asarray(resize_centre_crop(rgb, fused.size, helper)))

    def from_crop(self, crop: np.ndarray) -> np.ndarray:
        """The model's input from the uint8 `size` x `size` x 3 crop that `resize_centre_crop`
        made (in a decode worker process, `bot.engine.decoding`): the steps after the crop."""
        fused = self._fused
        assert fused is not None, "only a fused transform has a crop"
        if fused.lut is None:
            tensor: Any = Image.fromarray(crop)
            for step in fused.rest:
                tensor = step(tensor)
            return np.asarray(tensor, dtype=np.float32)[np.newaxis]
        out = np.empty((1, 3, fused.size, fused.size), dtype=np.float32)
        _lookup(crop, fused.lut, out[0])
        return out


def _fusable(transform: Any) -> _Fused | None:
    """How to fuse `transform`, when it starts with Resize(n, bicubic) + CenterCrop(n)."""
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize

    steps = list(getattr(transform, "transforms", []))
    if len(steps) < 2 or not isinstance(steps[0], Resize) or not isinstance(steps[1], CenterCrop):
        return None
    resize, crop = steps[0], steps[1]
    size = resize.size if isinstance(resize.size, int) else (resize.size[0] if len(resize.size) == 1 else None)
    if size is None or resize.max_size is not None or resize.interpolation != InterpolationMode.BICUBIC:
        return None
    if tuple(crop.size) != (size, size):
        return None
    rest = tuple(steps[2:])
    return _Fused(size, _normalise_table(rest), rest)


def _normalise_table(steps: tuple[Callable[[Any], Any], ...]) -> np.ndarray | None:
    """The (3, 256) lookup for [to RGB,] ToTensor, Normalize(mean, std); None for anything else."""
    from clip.clip import _convert_image_to_rgb
    from torchvision.transforms import Normalize, ToTensor

    steps = tuple(step for step in steps if step is not _convert_image_to_rgb)  # ours is RGB already
    if len(steps) != 2 or type(steps[0]) is not ToTensor or type(steps[1]) is not Normalize:
        return None
    normalize: Any = steps[1]  # a torchvision `Normalize` (checked above)
    mean = np.asarray(normalize.mean, dtype=np.float32).reshape(-1)
    std = np.asarray(normalize.std, dtype=np.float32).reshape(-1)
    if mean.size not in (1, 3) or std.size not in (1, 3):
        return None
    values = np.arange(256, dtype=np.float32) / np.float32(255)  # ToTensor: float32 division
    # Normalize: tensor.sub_(mean).div_(std), one float32 operation each.
    return np.stack([(values - m) / s for m, s in zip(np.broadcast_to(mean, 3), np.broadcast_to(std, 3), strict=True)])


def _crop_box(area: Box, size: int) -> tuple[Box, bool]:
    """The source box that torchvision's Resize(size) + CenterCrop(size) keeps of a picture
    lying in `area`, and whether it needs resizing (not when the short side is already
    `size`: torchvision only crops)."""
    origin_x, origin_y, right, bottom = area
    width, height = right - origin_x, bottom - origin_y
    # torchvision: the short side becomes `size`, the long one int(size * long / short).
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    left = round((new_width - size) / 2.0)
    top = round((new_height - size) / 2.0)
    if (new_width, new_height) == (width, height):
        return (origin_x + left, origin_y + top, origin_x + left + size, origin_y + top + size), False
    scale_x, scale_y = width / new_width, height / new_height
    return (
        origin_x + left * scale_x,
        origin_y + top * scale_y,
        origin_x + (left + size) * scale_x,
        origin_y + (top + size) * scale_y,
    ), True


def resize_centre_crop(
    image: Image.Image,
    size: int,
    helper: Executor | None = None,
    *,
    area: Box | None = None,
) -> Image.Image:
    """torchvision's Resize(size) then CenterCrop(size), computing only the kept pixels.

    A large picture is resized as two bands of output rows (see `BANDED_MIN_PIXELS`),
    the lower one on `helper` when there is one. `area`: where the whole picture lies in
    `image`'s pixels when not exactly on them (a JPEG decoded at a reduced DCT scale,
    `bot.engine.images.Decoded.area`), so the crop is the one the full picture gets.
    """
    box, resize = _crop_box((0, 0, *image.size) if area is None else area, size)
    if not resize:
        return image.crop(box)
    left, top, right, bottom = box
    if (right - left) * (bottom - top) < BANDED_MIN_PIXELS or size < 2:
        return image.resize((size, size), Image.Resampling.BICUBIC, box=box)
    half = size // 2
    middle = top + (bottom - top) * half / size

    def lower_band() -> Image.Image:
        return image.resize((size, size - half), Image.Resampling.BICUBIC, box=(left, middle, right, bottom))

    pending = helper.submit(lower_band) if helper is not None else None
    upper = image.resize((size, half), Image.Resampling.BICUBIC, box=(left, top, right, middle))
    lower = pending.result() if pending is not None else lower_band()
    result = Image.new(image.mode, (size, size))
    result.paste(upper, (0, 0))
    result.paste(lower, (0, half))
    return result


def _lookup(pixels: np.ndarray, lut: np.ndarray, out: np.ndarray) -> None:
    """`out[c] = lut[c][pixels[..., c]]`: uint8 HWC in, float32 CHW out."""
    for channel in range(3):
        np.take(lut[channel], pixels[..., channel], out=out[channel])
