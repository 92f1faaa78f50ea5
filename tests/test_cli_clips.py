"""`python -m bot classify` on a clip or an animation: ranked from a few frames, and it says how many."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import clips
from tests.support.badimages import UPRIGHT_LABEL, upright_shape
from tests.support.cli import run_cli
from tests.support.paths import TINY_MODEL_DIR
from tests.support.shapes import CLASSES

LABELS = ", ".join(CLASSES)


def test_a_clip_is_classified_from_eight_frames(tmp_path: Path) -> None:
    (tmp_path / "circles.mp4").write_bytes(clips.encode_clip(clips.shape_frames(["red circle"], per_label=16)))
    table = run_cli("classify", "circles.mp4", "--labels", LABELS, "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    header, first = table.stdout.splitlines()[:2]
    assert header.endswith("· from 8 frames") and "red circle" in first
    answer = run_cli(
        "classify", "circles.mp4", "--labels", LABELS, "--json", "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path
    )
    payload = json.loads(answer.stdout)
    assert payload["frames"] == 8 and payload["results"][0]["label"] == "red circle"


def test_an_iphone_portrait_clip_is_classified_upright(tmp_path: Path) -> None:
    """Landscape frames and the track header's "turn 90° clockwise", as an iPhone saves a portrait
    clip: the upright picture's class (unturned it is another: tests/engine/test_clip_rotation.py)."""
    upright = upright_shape().crop((0, 0, 256, 216))  # even sides for H.264's 4:2:0 chroma
    (tmp_path / "IMG_0001.MOV").write_bytes(clips.phone_clip(upright, "clockwise", "mov"))
    answer = run_cli(
        "classify", "IMG_0001.MOV", "--labels", LABELS, "--json", "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path
    )
    assert answer.returncode == 0, answer.stderr
    payload = json.loads(answer.stdout)
    assert payload["frames"] == 4 and payload["results"][0]["label"] == UPRIGHT_LABEL


def test_a_hostile_clip_gets_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "cut.mp4").write_bytes(clips.encode_clip(clips.numbered_frames(24))[:800])
    result = run_cli("classify", "cut.mp4", "--labels", "a, b", "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: The clip has no frames I can read (the upload looks cut short, or empty).\n"
