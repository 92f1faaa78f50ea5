"""A PNG heatmap of pairwise cosine similarities, for `/similar` with several phrases.

Pure Pillow (rectangles and text need no plotting library, and we depend on none),
drawn in a worker thread by the caller. Rows carry a number and the phrase; columns carry the same
numbers, so a 26 x 26 matrix stays readable at the width Discord shows an embed
image. Each cell is filled with one colour from `cell_colour`, which the tests
read back from the decoded PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Viridis at 9 stops (matplotlib's, sampled): perceptually even, readable for colour-blind people.
_VIRIDIS = np.array(
    [
        (68, 1, 84),
        (72, 40, 120),
        (62, 74, 137),
        (49, 104, 142),
        (38, 130, 142),
        (31, 158, 137),
        (53, 183, 121),
        (109, 205, 89),
        (180, 222, 44),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
BACKGROUND = (255, 255, 255)
INK = (32, 34, 37)
FONT_PX = 20
LABEL_CHARS = 32
MARGIN = 16


@dataclass(frozen=True, slots=True)
class HeatmapLayout:
    """Where things are drawn, so a test can find each cell in the picture."""

    origin: tuple[int, int]  # top-left corner of cell (0, 0)
    cell: int  # side of a cell in pixels
    low: float  # cosine drawn with the first colour
    high: float  # cosine drawn with the last colour


def cell_colour(value: float, low: float, high: float) -> tuple[int, int, int]:
    """The fill of a cell holding cosine `value`, on a scale from `low` to `high`."""
    span = high - low
    t = 0.0 if span <= 0 else min(max((value - low) / span, 0.0), 1.0)
    position = t * (len(_VIRIDIS) - 1)
    index = min(int(position), len(_VIRIDIS) - 2)
    mix = position - index
    rgb = _VIRIDIS[index] * (1 - mix) + _VIRIDIS[index + 1] * mix
    red, green, blue = (int(v) for v in np.rint(rgb))
    return (red, green, blue)


def _ink_on(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.2126 * fill[0] + 0.7152 * fill[1] + 0.0722 * fill[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def scale_for(matrix: np.ndarray) -> tuple[float, float]:
    """Colour scale: from the lowest cosine to the highest one off the diagonal (the
    diagonal is always 1.0 and would wash every other difference out)."""
    n = matrix.shape[0]
    off = matrix[~np.eye(n, dtype=bool)]
    low = float(off.min())
    high = float(off.max())
    if high - low < 1e-6:
        low, high = low - 0.05, high + 0.05
    return low, high


def render_heatmap(labels: Sequence[str], matrix: np.ndarray) -> tuple[bytes, HeatmapLayout]:
    """PNG bytes of the heatmap of `matrix` (n x n cosines) and where its cells are."""
    n = len(labels)
    if matrix.shape != (n, n) or n < 2:
        raise ValueError("need an n x n matrix for n >= 2 labels")
    font = ImageFont.load_default(size=FONT_PX)
    small = ImageFont.load_default(size=FONT_PX - 4)
    names = [f"{i}. {_short(label)}" for i, label in enumerate(labels, 1)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max(int(probe.textlength(name, font=font)) for name in names)
    cell = 58 if n <= 8 else 46 if n <= 14 else 36
    show_values = n <= 14
    header = FONT_PX + 12
    legend = 48
    low, high = scale_for(matrix)
    origin = (MARGIN + label_width + 12, MARGIN + header)
    width = origin[0] + n * cell + MARGIN
    height = origin[1] + n * cell + legend + MARGIN
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)

    for row, name in enumerate(names):
        y = origin[1] + row * cell + cell // 2
        draw.text((MARGIN, y), name, fill=INK, font=font, anchor="lm")
    for column in range(n):
        x = origin[0] + column * cell + cell // 2
        draw.text((x, origin[1] - 8), str(column + 1), fill=INK, font=font, anchor="ms")
    for row in range(n):
        for column in range(n):
            value = float(matrix[row, column])
            fill = cell_colour(value, low, high) if row != column else (225, 227, 230)
            x0, y0 = origin[0] + column * cell, origin[1] + row * cell
            draw.rectangle((x0, y0, x0 + cell - 2, y0 + cell - 2), fill=fill)
            if show_values and row != column:
                draw.text(
                    (x0 + (cell - 2) // 2, y0 + (cell - 2) // 2),
                    f"{value:.2f}",
                    fill=_ink_on(fill),
                    font=small,
                    anchor="mm",
                )

    # Colour bar with its two ends, under the matrix.
    bar_top = origin[1] + n * cell + 14
    bar_left, bar_right = origin[0], origin[0] + n * cell - 2
    for x in range(bar_left, bar_right + 1):
        t = (x - bar_left) / max(bar_right - bar_left, 1)
        draw.line((x, bar_top, x, bar_top + 12), fill=cell_colour(low + t * (high - low), low, high))
    draw.text((bar_left, bar_top + 16), f"{low:.2f}", fill=INK, font=small, anchor="lt")
    draw.text((bar_right, bar_top + 16), f"{high:.2f}", fill=INK, font=small, anchor="rt")
    draw.text((MARGIN, bar_top + 6), "cosine", fill=INK, font=small, anchor="lm")

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue(), HeatmapLayout(origin=origin, cell=cell, low=low, high=high)
