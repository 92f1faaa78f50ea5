"""Train the tiny real CLIP model that the test suite ships in tests/assets/tiny-clip.

Tests need a genuine CLIP (real tokenizer, real ``clip.model.CLIP`` graph, real ONNX files
loaded by ``inference.models.Clip``) that still gives meaningful answers, yet is small
enough to commit and fast on a CPU.  It learns the 12 coloured-shape classes of
``tests/support/shapes.py``.  Images go through exactly inference's run-time preprocessing
(``clip.clip._transform``), so held-out accuracy measured here carries over to the bot.

Usage: python -m scripts.train_tiny_clip [--out tests/assets/tiny-clip] [--steps N] [--seed S]
Re-running with the same arguments on the same machine reproduces the weights (fixed
seeds, 2 threads); other CPUs may differ in the last float bits.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from clip.clip import _transform, tokenize
from clip.model import CLIP

if __package__ in (None, ""):  # allow `python scripts/train_tiny_clip.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.onnx_export import export_roboflow_layout, round_weights_to_fp16
from tests.support.shapes import CLASSES, caption, render

# Architecture: tiny widths, but the real vocabulary and context length so that
# ``clip.tokenize`` output (what inference feeds) is valid input.
ARCH: dict[str, int] = {
    "embed_dim": 64,
    "image_resolution": 48,
    "vision_layers": 2,
    "vision_width": 64,  # VisionTransformer uses width // 64 heads -> 1 head
    "vision_patch_size": 8,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 64,
    "transformer_heads": 2,
    "transformer_layers": 2,
}
TEMPLATES: list[str] = [
    "a photo of a {}",
    "{}",
    "a {}",
    "a picture of a {}",
    "an image of a {}",
    "a drawing of a {}",
    "a {} shape",
    "this is a {}",
]
EVAL_TEMPLATE = "a photo of a {}"
TRAIN_IMAGES = 12_000
HELDOUT_IMAGES = 600
HELDOUT_SEED_OFFSET = 1_000_003  # held-out images come from an unrelated seed stream
BATCH = 128
LR = 1e-3
WARMUP = 100


def _image_tensor(args: tuple[int, int, int]) -> np.ndarray:
    """Render image ``index`` of stream ``seed`` and preprocess it like inference does."""
    seed, index, resolution = args
    rng = np.random.default_rng([seed, index])  # per-image stream: order/worker independent
    image = render(CLASSES[index % len(CLASSES)], rng)
    return _transform(resolution)(image).numpy()


def make_dataset(seed: int, count: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-render ``count`` balanced, preprocessed images once, so training steps are cheap."""
    jobs = [(seed, i, resolution) for i in range(count)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        arrays = pool.map(_image_tensor, jobs, chunksize=256)
    images = torch.from_numpy(np.stack(arrays))
    labels = torch.arange(count) % len(CLASSES)
    return images, labels


def class_tokens(templates: list[str]) -> torch.Tensor:
    """Token ids [len(templates) * 12, 77], template-major, via the real CLIP tokenizer."""
    return tokenize([caption(label, t) for t in templates for label in CLASSES])


def lr_at(step: int, steps: int) -> float:
    """Linear warm-up then cosine decay: stable start, clean finish for a short run."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * 0.5 * (1 + math.cos(math.pi * progress))


def loss_fn(model: CLIP, images: torch.Tensor, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Class-level CLIP loss that stays correct when a batch repeats a class.

    image->text: cross-entropy over the 12 class captions, for every template;
    text->image: each caption's target is spread uniformly over the batch images of its
    class (supervised contrastive), instead of CLIP's one-positive diagonal.
    """
    n_classes = len(CLASSES)
    img = F.normalize(model.encode_image(images), dim=-1)  # [B, D]
    txt = F.normalize(model.encode_text(tokens), dim=-1)  # [T*12, D]
    scale = model.logit_scale.exp().clamp(max=100)
    logits = scale * img @ txt.t()  # [B, T*12]
    per_template = logits.view(len(images), -1, n_classes)  # [B, T, 12]
    i2t = F.cross_entropy(per_template.permute(0, 2, 1), labels[:, None].expand(-1, per_template.shape[1]))
    text_labels = torch.arange(len(tokens)) % n_classes  # template-major order
    positives = (text_labels[:, None] == labels[None, :]).float()  # [T*12, B]
    target = positives / positives.sum(dim=1, keepdim=True).clamp(min=1)
    has_pos = positives.sum(dim=1) > 0
    t2i = -(target * F.log_softmax(logits.t(), dim=1)).sum(dim=1)[has_pos].mean()
    return (i2t + t2i) / 2


def train(seed: int, steps: int) -> tuple[CLIP, float]:
    """Train from scratch; returns the model and the wall time of the optimisation loop."""
    torch.manual_seed(seed)
    model = CLIP(**ARCH)
    resolution = ARCH["image_resolution"]
    t0 = time.perf_counter()
    images, labels = make_dataset(seed, TRAIN_IMAGES, resolution)
    print(f"rendered {len(images)} training images in {time.perf_counter() - t0:.1f}s", flush=True)
    tokens = class_tokens(TEMPLATES)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        idx = torch.randint(len(images), (BATCH,), generator=gen)
        batch = images[idx]
        flip = torch.rand(BATCH, generator=gen) < 0.5  # mirror-invariant classes: free data
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        loss = loss_fn(model, batch, labels[idx], tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            elapsed = time.perf_counter() - t0
            print(f"step {step:5d} loss {loss.item():.4f} {elapsed:6.1f}s", flush=True)
    return model.eval(), time.perf_counter() - t0


def heldout_top1(out_dir: Path, seed: int, resolution: int) -> float:
    """Top-1 of the exported ONNX files on fresh images, scored as inference would."""
    providers = ["CPUExecutionProvider"]
    visual = ort.InferenceSession(str(out_dir / "visual.onnx"), providers=providers)
    textual = ort.InferenceSession(str(out_dir / "textual.onnx"), providers=providers)
    tokens = class_tokens([EVAL_TEMPLATE]).numpy().astype(np.int32)
    txt = textual.run(None, {textual.get_inputs()[0].name: tokens})[0]
    images, labels = make_dataset(seed + HELDOUT_SEED_OFFSET, HELDOUT_IMAGES, resolution)
    img = visual.run(None, {visual.get_inputs()[0].name: images.numpy()})[0]
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    predictions = (img @ txt.T).argmax(axis=1)
    return float((predictions == labels.numpy()).mean())


def main(argv: list[str] | None = None) -> None:
    """Train, export with fp16 weights, measure held-out accuracy, write model.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/assets/tiny-clip"))
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    model, train_s = train(args.seed, args.steps)
    print(f"training took {train_s:.1f}s", flush=True)
    # Train in fp32, then make the torch weights equal to what the fp16 files store.
    round_weights_to_fp16(model)
    export_roboflow_layout(model, args.out, fp16_weights=True)
    resolution = ARCH["image_resolution"]
    top1 = heldout_top1(args.out, args.seed, resolution)
    meta = {
        "classes": CLASSES,
        "template": EVAL_TEMPLATE,
        "resolution": resolution,
        "embed_dim": ARCH["embed_dim"],
        "seed": args.seed,
        "steps": args.steps,
        "heldout_top1": round(top1, 4),
        "heldout_images": HELDOUT_IMAGES,
        "train_templates": TEMPLATES,
        "architecture": ARCH,
    }
    (args.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.iterdir())}
    print(json.dumps({"heldout_top1": top1, "train_seconds": round(train_s, 1), "sizes": sizes}))


if __name__ == "__main__":
    main()
