"""Every hostile family through the command line: an answer, or one `error:` line, in time.

Each run is a fresh process that loads the tiny model; they run three at a time.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.badimages import (
    colour_key_pngs,
    deep_png,
    deep_tiff,
    gif_comment_bomb,
    jpeg_scan_bomb,
    malformed_exif_jpegs,
    negative_width_bmp,
    tiff_strip_bomb,
)
from tests.support.cli import run_cli
from tests.support.labels import CJK_LABEL
from tests.support.paths import TINY_MODEL_DIR
from tests.support.shapes import shape_png

pytestmark = pytest.mark.slow  # whole CLI runs that load the model

#: file name -> (bytes, labels, expected: "answer" or the start of the one error line's reason)
CASES: dict[str, tuple[bytes, str, str]] = {
    "comments.gif": (gif_comment_bomb(), "a, b", "takes too long to decode"),
    "scans.jpg": (jpeg_scan_bomb(), "a, b", "takes too long to decode"),
    "strips.tif": (tiff_strip_bomb(), "a, b", "takes too long to decode"),
    "deep-16bit.png": (deep_png(), "light, dark", "answer"),
    "deep-float.tif": (deep_tiff("float"), "light, dark", "answer"),
    "bad-exif.jpg": (malformed_exif_jpegs()["rational-minus-one-over-zero"], "red, blue", "answer"),
    "colour-key.png": (colour_key_pngs()["16-bit-grey-trns"], "white, black", "answer"),
    "negative.bmp": (negative_width_bmp(), "a, b", "corrupt"),
    "invisible-labels.png": (shape_png("red circle", 3), "red circle, red\u200b circle, café, cafe\u0301", "answer"),
    "cjk-label.png": (shape_png("red circle", 4), f"{CJK_LABEL}, red circle", "answer"),
}
BUDGET_S = 2.0
DEEP_BUDGET_S = 60.0


def _run(tmp_path: Path, name: str) -> tuple[str, object, float]:
    data, labels, _ = CASES[name]
    (tmp_path / name).write_bytes(data)
    # Bombs get a short budget; the 49 MP pictures are legitimate and get time to decode.
    budget = DEEP_BUDGET_S if name.startswith("deep") else BUDGET_S
    started = time.perf_counter()
    result = run_cli(
        "classify",
        name,
        "--labels",
        labels,
        "--json",
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
        env={"DECODE_TIMEOUT_S": str(budget), "DECODE_WORKERS": "1"},
    )
    return name, result, time.perf_counter() - started


def test_every_hostile_family_ends_with_an_answer_or_one_line(tmp_path: Path) -> None:
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda name: _run(tmp_path, name), CASES))
    for name, result, elapsed in results:
        expected = CASES[name][2]
        assert "Traceback" not in result.stderr, (name, result.stderr)  # type: ignore[attr-defined]
        if expected == "answer":
            assert result.returncode == 0 and result.stderr == "", (name, result.stderr)  # type: ignore[attr-defined]
        else:
            assert result.returncode == 2, (name, result.stderr)  # type: ignore[attr-defined]
            lines = result.stderr.splitlines()  # type: ignore[attr-defined]
            assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, lines)
        assert elapsed < 90, f"{name}: {elapsed:.0f} s (model load included)"
    import json

    answers = {name: json.loads(result.stdout) for name, result, _ in results if CASES[name][2] == "answer"}  # type: ignore[attr-defined]
    invisible = answers["invisible-labels.png"]["results"]
    assert sorted(r["label"] for r in invisible) == ["café", "red circle"], "invisible and NFD twins are one label"
    cjk = {r["label"]: r for r in answers["cjk-label.png"]["results"]}
    assert cjk[CJK_LABEL]["truncated"] or cjk[CJK_LABEL]["template_dropped"], "the reply says it was shortened"
    assert cjk["red circle"]["probability"] > 0.5, "the CJK label was not cut down to the template and made to win"


@pytest.mark.parametrize("name", ["deep-16bit.png"])
def test_deep_pictures_are_converted_within_the_memory_cap(tmp_path: Path, name: str) -> None:
    """A 49 MP 16-bit picture under a 512 MB worker cap (it used to reach 2.4 GB)."""
    data, labels, _ = CASES[name]
    (tmp_path / name).write_bytes(data)
    result = run_cli(
        "classify",
        name,
        "--labels",
        labels,
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
        env={"DECODE_MEMORY_MB": "512", "DECODE_TIMEOUT_S": "30"},
    )
    assert result.returncode == 0, result.stderr
