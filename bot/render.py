"""Plain-text pieces of a reply, shared by the Discord embed and the CLI."""

from __future__ import annotations

BAR_FULL = "█"
BAR_EMPTY = "░"


def bar(fraction: float, width: int = 12) -> str:
    """A text bar; any non-zero fraction shows at least a sliver."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    if fraction > 0 and filled == 0:
        filled = 1
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def percent(probability: float) -> str:
    """`71.2%`, `<0.1%` or `100%`, never a misleading `0.0%`."""
    value = probability * 100
    if 0 < value < 0.05:
        return "<0.1%"
    if value >= 99.95:
        return "100%"
    return f"{value:.1f}%"


def cosine_fraction(cosine: float) -> float:
    """Bar length for a cosine: the cosine itself, negatives as empty."""
    return max(cosine, 0.0)
