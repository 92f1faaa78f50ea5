"""The CLI refuses bad input in well under a second, before CLIP loads, with one line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli
from tests.support.paths import TINY_MODEL_DIR
from tests.support.shapes import render

#: A generous bound (about 0.6 s measured on an idle 2-core machine); the proof that CLIP was
#: not loaded is the model cache, which stays empty (loading stages the model there first).
BEFORE_LOADING_S = 3.0


def _bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all")
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(2 * 1024 * 1024)  # sparse: over the 1 MiB limit set below
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    loop = tmp_path / "loop"
    os.symlink(tmp_path / "loop2", loop)
    os.symlink(loop, tmp_path / "loop2")
    return {
        "empty": (empty, "the file is empty (0 bytes)"),
        "not an image": (text, "is not an image I can read"),
        "too large": (big, "The image is too large (2.0 MiB, at most 1 MiB)"),
        "missing": (tmp_path / "nope.jpg", "No such file"),
        "folder": (tmp_path, "it is not a regular file"),
        "under a file": (a_file / "x.png", "a part of the path is not a folder"),
        "symlink loop": (loop, "too many levels of symbolic links"),
        "name too long": (tmp_path / ("a" * 300 + ".png"), "the file name is too long"),
    }


@pytest.mark.parametrize(
    "case", ["empty", "not an image", "too large", "missing", "folder", "under a file", "symlink loop", "name too long"]
)
def test_bad_file_is_one_line_exit_2_before_the_model_loads(tmp_path: Path, case: str) -> None:
    path, expected = _bad_paths(tmp_path)[case]
    cache = tmp_path / "model-cache"
    cache.mkdir()
    started = time.perf_counter()
    result = run_cli(
        "classify",
        str(path),
        "--labels",
        "a, b",
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
        env={"MAX_IMAGE_BYTES": str(1024 * 1024), "MODEL_CACHE_DIR": str(cache)},
    )
    elapsed = time.perf_counter() - started
    assert not any(cache.iterdir()), "CLIP was loaded before the file was refused"
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert elapsed < BEFORE_LOADING_S, f"refused after {elapsed:.2f} s: was CLIP loaded first?"


def test_bad_labels_are_refused_before_the_model_loads(tmp_path: Path) -> None:
    image = tmp_path / "red.png"
    render("red circle", np.random.default_rng(1)).save(image)
    cache = tmp_path / "model-cache"
    cache.mkdir()
    started = time.perf_counter()
    result = run_cli(
        "classify",
        str(image),
        "--labels",
        "only one",
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
        env={"MODEL_CACHE_DIR": str(cache)},
    )
    assert time.perf_counter() - started < BEFORE_LOADING_S
    assert not any(cache.iterdir()), "CLIP was loaded before the labels were refused"
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "at least 2" in result.stderr


@pytest.mark.slow  # a whole CLI run that loads the model
def test_a_query_prints_no_logs_by_default_and_shows_them_with_v(tmp_path: Path) -> None:
    """By default stdout has the answer and stderr stays empty; `-v` brings the logs back."""
    image = tmp_path / "red.png"
    render("red circle", np.random.default_rng(1)).save(image)
    args = ("classify", str(image), "--labels", "red circle, blue square", "--model-dir", str(TINY_MODEL_DIR))
    quiet = run_cli(*args, cwd=tmp_path, env={"LOG_LEVEL": "INFO"})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "red circle" in quiet.stdout.splitlines()[1]
    loud = run_cli(*args, "-v", cwd=tmp_path)
    assert loud.returncode == 0
    assert "ready in" in loud.stderr and "Creating inference sessions" in loud.stderr
