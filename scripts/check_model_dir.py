"""Load a Roboflow-layout CLIP folder through inference's real ``Clip`` loader; print JSON.

Proves that a folder holding ``visual.onnx`` + ``textual.onnx`` works with production code
unchanged (OFFLINE_MODE, model cache, ``Clip(model_id=...)``) and reports held-out top-1 on
the coloured-shape classes.

Usage: python -m scripts.check_model_dir MODEL_DIR [--images 240] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # allow `python scripts/check_model_dir.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.shapes import CLASSES, render

MODEL_ID = "clip/tiny-test"
FILES = ("visual.onnx", "textual.onnx")
HELDOUT_SEED_OFFSET = 2_000_029  # distinct from training and train-time held-out streams


def configure_inference_env(cache_root: Path) -> None:
    """Set inference's env; it reads these at import time, so call before importing it."""
    os.environ["MODEL_CACHE_DIR"] = str(cache_root)
    os.environ["OFFLINE_MODE"] = "True"
    os.environ["CLIP_MAX_BATCH_SIZE"] = "32"
    os.environ["METRICS_ENABLED"] = "False"
    os.environ["DISABLE_VERSION_CHECK"] = "True"


def install_into_cache(model_dir: Path, model_id: str = MODEL_ID) -> tuple[Path, str]:
    """Hard-link (else copy) the ONNX files into inference's cache dir for ``model_id``.

    inference refuses symlinks anywhere in an offline cache tree, hence links or copies.
    Returns the cache directory and the method used.
    """
    from inference.core.cache.model_artifacts import get_cache_dir

    cache_dir = Path(get_cache_dir(model_id=model_id))
    cache_dir.mkdir(parents=True, exist_ok=True)
    method = "hardlink"
    for name in FILES:
        target = cache_dir / name
        target.unlink(missing_ok=True)
        try:
            os.link(model_dir / name, target)
        except OSError:
            shutil.copyfile(model_dir / name, target)
            method = "copy"
    return cache_dir, method


def check(model_dir: Path, images: int, seed: int) -> dict[str, Any]:
    """Load via ``inference.models.Clip`` and exercise embed_image/embed_text/compare."""
    meta_path = model_dir / "model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    classes: list[str] = meta.get("classes", CLASSES)
    template: str = meta.get("template", "a photo of a {}")

    cache_root = Path(tempfile.mkdtemp(prefix="clip-cache-"))
    try:
        configure_inference_env(cache_root)
        cache_dir, method = install_into_cache(model_dir)
        before = sorted(p.name for p in cache_dir.iterdir())

        from inference.models import Clip

        t0 = time.perf_counter()
        model = Clip(model_id=MODEL_ID, onnxruntime_execution_providers=["CPUExecutionProvider"])
        load_s = time.perf_counter() - t0
        after = sorted(p.name for p in cache_dir.iterdir())

        rng = np.random.default_rng([seed, 0])
        sample = render(classes[0], rng)
        image_emb = model.embed_image(sample)
        text_emb = model.embed_text([template.format(c) for c in classes])
        similarities = model.compare(subject=sample, prompt=[template.format(c) for c in classes])

        text_unit = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
        correct = 0
        t0 = time.perf_counter()
        for i in range(images):
            label = i % len(classes)
            img = render(classes[label], np.random.default_rng([seed + HELDOUT_SEED_OFFSET, i]))
            emb = model.embed_image(img)[0]
            cos = text_unit @ (emb / np.linalg.norm(emb))
            probs = np.exp(100 * (cos - cos.max()))  # softmax over cosine, CLIP's scale
            probs /= probs.sum()
            correct += int(np.argmax(probs) == label)
        per_image_ms = (time.perf_counter() - t0) / max(1, images) * 1e3

        return {
            "model_dir": str(model_dir),
            "model_id": MODEL_ID,
            "cache_dir": str(cache_dir.relative_to(cache_root)),
            "install_method": method,
            "cache_files_before_load": before,
            "cache_files_after_load": after,
            "load_seconds": round(load_s, 3),
            "resolution": int(model.resolution),
            "embed_image_shape": list(image_emb.shape),
            "embed_text_shape": list(text_emb.shape),
            "compare_argmax": classes[int(np.argmax(similarities))],
            "compare_expected": classes[0],
            "heldout_images": images,
            "heldout_top1": round(correct / max(1, images), 4),
            "embed_image_ms_per_image": round(per_image_ms, 2),
        }
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: print the check result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(json.dumps(check(args.model_dir.resolve(), args.images, args.seed), indent=2))


if __name__ == "__main__":
    main()
