"""Repost alerts: where to put the cosine threshold between a near-duplicate and a different image.

    .venv/bin/python -m benchmarks.repost [--model-dir DIR] [--originals 48] [--target-fpr 0.005]

Generated originals (the tests' coloured shapes, every class, several seeds) are each
turned into near-duplicates the way a repost changes a picture: re-encoded as JPEG at
several qualities, resized, cropped, recoloured and made brighter or darker. Every
image goes through the bot's own path (decode worker, CLIP's visual encoder, L2
normalisation). Positives: each original against each of its near-duplicates.
Negatives: each original against every other original, and each near-duplicate against
the other originals (a repost alert compares a new image with what is indexed).

The threshold chosen is the lowest cosine at which the false-positive rate on the
negatives stays within `--target-fpr` (an alert on a different image is the costly
mistake: it is a public reply); the false-negative rate is what that costs. Prints JSON
lines: the distributions, the threshold, the rates (overall and per transformation).
The default model is the tests' tiny CLIP; pass `--model-dir` with ViT-B/16's files to
measure the production model the same way (BENCHMARKS.md, "Repost alerts").
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from bot.config import Settings
from bot.engine import ClipEngine
from bot.storage.vectors import unit_rows

Transform = Callable[[Image.Image], Image.Image]


def _jpeg(quality: int) -> Transform:
    def encode(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue()))

    return encode


def _resize(factor: float) -> Transform:
    return lambda image: image.resize((max(8, round(image.width * factor)), max(8, round(image.height * factor))))


def _crop(keep: float) -> Transform:
    def crop(image: Image.Image) -> Image.Image:
        w, h = image.size
        dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
        return image.crop((dx, dy, w - dx, h - dy))

    return crop


def _brightness(factor: float) -> Transform:
    return lambda image: ImageEnhance.Brightness(image.convert("RGB")).enhance(factor)


def _saturation(factor: float) -> Transform:
    return lambda image: ImageEnhance.Color(image.convert("RGB")).enhance(factor)


def _hue_shift(degrees: int) -> Transform:
    def shift(image: Image.Image) -> Image.Image:
        hsv = np.array(image.convert("RGB").convert("HSV"))
        hsv[..., 0] = (hsv[..., 0].astype(int) + round(degrees * 255 / 360)) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB")

    return shift


#: The near-duplicate transformations, by name.
TRANSFORMS: dict[str, Transform] = {
    "jpeg q90": _jpeg(90),
    "jpeg q70": _jpeg(70),
    "jpeg q50": _jpeg(50),
    "jpeg q30": _jpeg(30),
    "resize 0.5x": _resize(0.5),
    "resize 0.75x": _resize(0.75),
    "resize 2x": _resize(2.0),
    "crop 90%": _crop(0.9),
    "crop 80%": _crop(0.8),
    "brightness 0.8": _brightness(0.8),
    "brightness 1.2": _brightness(1.2),
    "saturation 0.6": _saturation(0.6),
    "hue +15°": _hue_shift(15),
    "resize 0.75x + jpeg q70": lambda image: _jpeg(70)(_resize(0.75)(image)),
}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def originals(count: int) -> list[Image.Image]:
    """`count` different generated pictures, cycling through every class with a new seed each time."""
    from tests.support.shapes import CLASSES, HELDOUT_SEED, render

    rng = np.random.default_rng(HELDOUT_SEED + 7)
    return [render(CLASSES[i % len(CLASSES)], rng, size=224) for i in range(count)]


def choose_threshold(positives: np.ndarray, negatives: np.ndarray, target_fpr: float) -> float:
    """The lowest cosine (rounded up to 0.01) whose false-positive rate on `negatives` is at most `target_fpr`."""
    for threshold in np.round(np.arange(0.5, 1.0001, 0.01), 2):
        if float(np.mean(negatives >= threshold)) <= target_fpr:
            return float(threshold)
    return 1.0


def summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    qs = np.percentile(values, [0, 1, 5, 25, 50, 75, 95, 99, 100])
    keys = ["min", "p1", "p5", "p25", "p50", "p75", "p95", "p99", "max"]
    return {key: round(float(q), 4) for key, q in zip(keys, qs, strict=True)}


def rate(hits: np.ndarray) -> float | None:
    """The share of true values (None for no values: fewer originals than classes)."""
    return round(float(np.mean(hits)), 4) if hits.size else None


async def measure(model_dir: Path | None, count: int, target_fpr: float) -> list[dict[str, object]]:
    values: dict[str, object] = {"clip_execution_providers": ("CPUExecutionProvider",)}
    if model_dir is None:
        from tests.support.paths import TINY_MODEL_DIR
        from tests.support.settings import TEST_CACHE_DIR

        values.update(clip_model_dir=TINY_MODEL_DIR, model_cache_dir=TEST_CACHE_DIR)
    else:
        values["clip_model_dir"] = model_dir
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg,arg-type]
    engine = ClipEngine(settings)
    info = await engine.start()
    await engine.settled()
    try:
        pictures = originals(count)

        async def embed(image: Image.Image) -> np.ndarray:
            return unit_rows(await engine.embed_image(png(image.convert("RGB")), background=True))[0]

        base = np.stack(await asyncio.gather(*(embed(p) for p in pictures)))
        variants = {
            name: np.stack(await asyncio.gather(*(embed(transform(p)) for p in pictures)))
            for name, transform in TRANSFORMS.items()
        }
    finally:
        await engine.aclose()
    others = ~np.eye(count, dtype=bool)
    positives_by = {name: np.sum(vectors * base, axis=1) for name, vectors in variants.items()}
    positives = np.concatenate(list(positives_by.values()))
    negatives = np.concatenate(
        [(base @ base.T)[np.triu(others, 1)]] + [(vectors @ base.T)[others] for vectors in variants.values()]
    )
    threshold = choose_threshold(positives, negatives, target_fpr)
    from tests.support.shapes import CLASSES

    classes = np.arange(count) % len(CLASSES)
    same_class = (classes[:, None] == classes[None, :]) & others
    same = np.concatenate([(vectors @ base.T)[same_class] for vectors in [base, *variants.values()]])
    apart = np.concatenate([(vectors @ base.T)[others & ~same_class] for vectors in [base, *variants.values()]])
    # What the alert itself sees: each near-duplicate's nearest neighbour among the originals.
    nearest_right = np.mean([np.argmax(vectors @ base.T, axis=1) == np.arange(count) for vectors in variants.values()])
    return [
        {"what": "model", "model": info.model, "originals": count, "transforms": len(TRANSFORMS)},
        {"what": "near-duplicates", "pairs": int(positives.size), **summary(positives)},
        {"what": "different images", "pairs": int(negatives.size), **summary(negatives)},
        {"what": "different images, same class", "pairs": int(same.size), **summary(same)},
        {"what": "different images, other classes", "pairs": int(apart.size), **summary(apart)},
        {
            "what": "threshold",
            "target_fpr": target_fpr,
            "threshold": threshold,
            "false_positive_rate": round(float(np.mean(negatives >= threshold)), 4),
            "false_negative_rate": round(float(np.mean(positives < threshold)), 4),
            "false_positive_rate_same_class": rate(same >= threshold),
            "false_positive_rate_other_classes": rate(apart >= threshold),
            "nearest_neighbour_is_the_original": round(float(nearest_right), 4),
        },
        {
            "what": "false negatives by transformation",
            **{name: round(float(np.mean(values < threshold)), 3) for name, values in positives_by.items()},
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="CLIP's files (default: the tests' tiny CLIP)")
    parser.add_argument("--originals", type=int, default=48)
    parser.add_argument("--target-fpr", type=float, default=0.005)
    args = parser.parse_args()
    for line in asyncio.run(measure(args.model_dir, args.originals, args.target_fpr)):
        print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
