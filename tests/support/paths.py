"""Where things are in this checkout, whichever checkout the virtualenv was installed from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The tiny CLIP trained by `scripts/train_tiny_clip.py` on `tests.support.shapes`, committed.
TINY_MODEL_DIR = REPO / "tests" / "assets" / "tiny-clip"
