"""The `/similar` heatmap: each cell's colour says its cosine, and it stays small."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.heatmap import cell_colour, render_heatmap, scale_for
from bot.stats import UsageStats


def _unit_rows(n: int, seed: int) -> np.ndarray:
    vecs = np.random.default_rng(seed).normal(size=(n, 24))
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


@pytest.mark.parametrize("n", [3, 9, 26])
def test_each_cell_is_filled_with_the_colour_of_its_cosine(n: int) -> None:
    vecs = _unit_rows(n, n)
    matrix = vecs @ vecs.T
    labels = [f"phrase number {i}" for i in range(n)]
    png, layout = render_heatmap(labels, matrix)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    pixels = np.asarray(image.convert("RGB"))
    low, high = scale_for(matrix)
    for row in range(n):
        for column in range(n):
            if row == column:
                continue
            # A corner of the cell: the value is printed in its middle.
            x = layout.origin[0] + column * layout.cell + 2
            y = layout.origin[1] + row * layout.cell + 2
            assert tuple(pixels[y, x]) == cell_colour(matrix[row, column], low, high), (row, column)
    assert len(png) < 1024 * 1024, "far below Discord's smallest upload limit"


def test_higher_cosine_is_a_brighter_colour_and_the_scale_spans_the_off_diagonal() -> None:
    matrix = np.array([[1.0, 0.2, 0.9], [0.2, 1.0, 0.5], [0.9, 0.5, 1.0]])
    low, high = scale_for(matrix)
    assert (low, high) == (0.2, 0.9)

    def luminance(rgb: tuple[int, int, int]) -> float:
        return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]

    values = np.linspace(low, high, 20)
    shades = [luminance(cell_colour(v, low, high)) for v in values]
    assert shades == sorted(shades)
    assert cell_colour(0.2, low, high) != cell_colour(0.9, low, high)


def test_long_labels_are_shortened_and_the_picture_stays_readable_size() -> None:
    vecs = _unit_rows(4, 1)
    png, layout = render_heatmap(["x" * 500, "b", "c", "d"], vecs @ vecs.T)
    width, height = Image.open(io.BytesIO(png)).size
    assert width < 800 and height < 600 and layout.cell >= 36


def test_usage_stats_count_answers_and_latency_percentiles() -> None:
    stats = UsageStats()
    assert stats.latency() is None
    for seconds in [0.1] * 90 + [1.0] * 10:
        stats.record("classify", seconds)
    stats.record("similar", 0.05)
    classify = stats.latency("classify")
    assert classify is not None and classify.answers == 100
    assert classify.median_s == pytest.approx(0.1) and classify.p95_s == pytest.approx(1.0)
    everything = stats.latency()
    assert everything is not None and everything.answers == 101
    assert stats.commands == ["classify", "similar"]
