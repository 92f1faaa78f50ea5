"""The fused resize + centre crop gives what inference's own CLIP transform gives."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from clip.clip import _transform
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

from bot.engine.preprocess import BANDED_MIN_PIXELS, ClipImageTransform

#: One step of 8-bit rounding, after CLIP's normalisation (the smallest std is 0.261).
ONE_LEVEL = 1 / 255 / 0.26


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise: every resize tap matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x * y) / (width * height)], axis=-1) * 220
    return Image.fromarray(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize(
    "size",
    [
        (640, 480),
        (480, 640),
        (224, 224),
        (224, 300),
        (300, 224),
        (1000, 225),
        (223, 500),
        (799, 601),
        (100, 80),
        (1920, 1080),
        (48, 48),
        (1, 1),
    ],
)
@pytest.mark.parametrize("resolution", [224, 48])
def test_fused_matches_inference_transform(size: tuple[int, int], resolution: int) -> None:
    reference = _transform(resolution)  # what inference's Clip.clip_preprocess is
    fused = ClipImageTransform(reference)
    assert fused.size == resolution, "CLIP's transform is recognised and fused"
    image = photo(*size)
    want = reference(image).numpy()[np.newaxis]
    got = fused(image)
    assert got.shape == want.shape == (1, 3, resolution, resolution) and got.dtype == np.float32
    difference = np.abs(got - want)
    assert difference.max() <= ONE_LEVEL * 1.01, "never more than one 8-bit rounding step"
    assert (difference > 1e-6).mean() < 0.005, "and only on a handful of values"


def test_other_transforms_are_applied_as_they_are() -> None:
    transform = Compose([Resize((32, 40)), ToTensor()])
    fused = ClipImageTransform(transform)
    assert fused.size is None
    image = photo(90, 70)
    np.testing.assert_array_equal(fused(image), transform(image).numpy()[np.newaxis])


def test_extreme_aspect_ratio_costs_no_more_than_a_normal_picture() -> None:
    """torchvision would first resize 40000 x 2 to 4,480,000 x 224 pixels (3 GB); we compute 224 x 224."""
    fused = ClipImageTransform(_transform(224))
    for image in (photo(40_000, 2), photo(2, 40_000)):
        started = time.perf_counter()
        pixels = fused(image)
        assert pixels.shape == (1, 3, 224, 224) and np.isfinite(pixels).all()
        assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("size", [(224, 300), (300, 224), (224, 224), (224, 1000)])
def test_crop_only_pictures_are_bit_identical_to_inference_transform(size: tuple[int, int]) -> None:
    """No resize happens here, so this isolates ToTensor + Normalize: the lookup table is exact."""
    reference = _transform(224)
    fused = ClipImageTransform(reference)
    assert fused.lookup, "CLIP's ToTensor + Normalize run as a lookup table"
    image = photo(*size, seed=3)
    np.testing.assert_array_equal(fused(image), reference(image).numpy()[np.newaxis])


def test_other_mean_and_std_use_their_own_lookup_table() -> None:
    transform = Compose(
        [
            Resize(32, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(32),
            ToTensor(),
            Normalize((0.5, 0.1, 0.9), (0.2, 0.7, 0.3)),
        ]
    )
    fused = ClipImageTransform(transform)
    assert fused.size == 32 and fused.lookup
    image = photo(32, 50, seed=7)  # crop only: exact
    np.testing.assert_array_equal(fused(image), transform(image).numpy()[np.newaxis])


def test_unknown_steps_after_the_crop_are_applied_as_they_are() -> None:
    scale = 0.5
    transform = Compose(
        [Resize(32, interpolation=InterpolationMode.BICUBIC), CenterCrop(32), ToTensor(), lambda t: t * scale]
    )
    fused = ClipImageTransform(transform)
    assert fused.size == 32 and not fused.lookup
    image = photo(32, 50, seed=9)
    np.testing.assert_array_equal(fused(image), transform(image).numpy()[np.newaxis])


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the work handed to it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize(
    "size",
    [(1920, 1080), (1080, 1920), (1464, 1593), (995, 1885), (849, 1242), (1640, 1687), (1518, 1606), (1163, 1584)],
)
def test_a_large_photo_is_resized_on_two_threads_with_the_same_pixels(size: tuple[int, int]) -> None:
    """A lone photo gets a helper thread, a batched one does not: its pixels must not depend on that."""
    assert min(size) ** 2 >= BANDED_MIN_PIXELS, "large enough to be resized in two bands"
    reference = _transform(224)
    fused = ClipImageTransform(reference)
    image = photo(*size, seed=5)
    with CountingPool() as helper:
        shared = fused(image, helper=helper)
        assert helper.submitted == 1, "half of the resize ran on the helper"
    np.testing.assert_array_equal(shared, fused(image))
    difference = np.abs(shared - reference(image).numpy()[np.newaxis])
    assert difference.max() <= ONE_LEVEL * 1.01 and (difference > 1e-6).mean() < 0.005, "still CLIP's transform"


def test_a_small_photo_is_resized_in_one_piece() -> None:
    """Handing half of a small resize to another thread costs more than it saves (measured)."""
    fused = ClipImageTransform(_transform(224))
    with CountingPool() as helper:
        fused(photo(640, 480), helper=helper)
        assert helper.submitted == 0
