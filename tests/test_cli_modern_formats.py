"""AVIF and HEIC through the command line, and file names in `error:` lines shown inert.

Each classify run is a fresh process that loads the tiny model; they run three at a time.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from bot.engine.filetypes import SUPPORTED_HINT
from bot.engine.images import decode_image
from tests.support.badimages import (
    COUSIN_REASON,
    STORED_LABEL,
    UPRIGHT_LABEL,
    as_phone_saves,
    encode,
    isobmff_cousins,
    upright_shape,
)
from tests.support.cli import run_cli
from tests.support.paths import TINY_MODEL_DIR
from tests.support.shapes import CLASSES

MAX_PIXELS = 50_000_000


def _classify(folder: Path, name: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    labels = ", ".join(CLASSES)
    return run_cli(
        "classify", name, "--labels", labels, "--json", "--model-dir", str(TINY_MODEL_DIR), cwd=folder, env=env
    )


def test_avif_and_heic_photos_are_classified_upright_like_a_png_of_their_pixels(tmp_path: Path) -> None:
    """Phone photos stored sideways with EXIF orientation 6, under names that say nothing of the
    format: the answer is the upright picture's, with the cosines of a PNG of the decoded pixels."""
    upright = upright_shape()
    files = {"stored-sideways.png": encode(upright.transpose(Image.Transpose.ROTATE_90), "PNG")}
    for fmt, name in (("AVIF", "photo.avif"), ("HEIF", "IMG_0001.HEIC")):
        data = as_phone_saves(upright, fmt)
        files[name] = data
        files[f"{name}.pixels.png"] = encode(decode_image(data, max_pixels=MAX_PIXELS), "PNG")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(files, pool.map(lambda name: _classify(tmp_path, name), files), strict=True))
    answers = {}
    for name, result in results.items():
        assert result.returncode == 0 and result.stderr == "", (name, result.stderr)
        answers[name] = {row["label"]: row["cosine"] for row in json.loads(result.stdout)["results"]}
    assert max(answers["stored-sideways.png"], key=answers["stored-sideways.png"].get) == STORED_LABEL
    for name in ("photo.avif", "IMG_0001.HEIC"):
        assert max(answers[name], key=answers[name].get) == UPRIGHT_LABEL, name
        for label, cosine in answers[name].items():
            assert cosine == pytest.approx(answers[f"{name}.pixels.png"][label], abs=1e-4), (name, label)


#: One cousin per hostile family, formats alternating (each run loads the model); every cousin
#: of both formats is refused through the engine in tests/engine/test_modern_formats.py.
CLI_COUSINS = {
    "cut-in-half.heic": ("HEIF", "cut-in-half"),
    "declares-60000x60000.avif": ("AVIF", "declares-60000x60000"),
    "60000-items.avif": ("AVIF", "60000-items"),
}


def test_hostile_avif_and_heic_cousins_get_one_error_line_each(tmp_path: Path) -> None:
    for name, (fmt, family) in CLI_COUSINS.items():
        (tmp_path / name).write_bytes(isobmff_cousins(fmt)[family])
    env = {"DECODE_TIMEOUT_S": "2", "DECODE_WORKERS": "1"}
    with ThreadPoolExecutor(3) as pool:
        results = dict(
            zip(CLI_COUSINS, pool.map(lambda name: _classify(tmp_path, name, env), CLI_COUSINS), strict=True)
        )
    for name, result in results.items():
        assert result.returncode == 2 and result.stdout == "", (name, result.stderr)
        lines = result.stderr.splitlines()
        expected = COUSIN_REASON[CLI_COUSINS[name][1]]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, lines)


@pytest.mark.parametrize(
    "name, shown",
    [
        ("two\nlines.png", r"'two\nlines.png'"),
        ("\x1b[31mred.png", r"'\x1b[31mred.png'"),
        ("bell\x07.png", r"'bell\x07.png'"),
        ("\u202egnp.exe", r"'\u202egnp.exe'"),  # right-to-left override: shows as "exe.png"
    ],
    ids=["newline", "ansi-escape", "bell", "bidi-override"],
)
@pytest.mark.parametrize("exists", [True, False], ids=["not-an-image", "missing"])
def test_a_file_name_with_control_characters_gives_one_inert_line(
    tmp_path: Path, name: str, shown: str, exists: bool
) -> None:
    if exists:
        (tmp_path / name).write_text("not a picture")
    result = run_cli("classify", name, "--labels", "a, b", "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    line = result.stderr.rstrip("\n")
    assert line.isprintable(), f"a control character reached the terminal: {line!r}"
    reason = f"is not an image I can read (use {SUPPORTED_HINT})." if exists else ""
    expected = f"error: {shown} {reason}" if exists else f"error: No such file: {shown}"
    assert line == expected.rstrip()


def test_a_plain_file_name_is_shown_as_typed(tmp_path: Path) -> None:
    (tmp_path / "café photo.png").write_text("not a picture")
    result = run_cli("classify", "café photo.png", "--labels", "a, b", "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path)
    assert result.stderr.startswith("error: café photo.png is not an image I can read"), result.stderr
