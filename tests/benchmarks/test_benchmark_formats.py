"""`python -m benchmarks.formats` runs end to end and prints a row per format.

Timings are not judged here (BENCHMARKS.md holds them). What is judged: the three files of one
picture give CLIP the same crop, to a few levels of lossy coding, so AVIF and HEIC are decoded
the way the JPEG is: upright, in colour, every pixel where it belongs.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def test_formats_bench_prints_a_row_per_format_with_the_same_crop() -> None:
    command = [sys.executable, "-m", "benchmarks.formats", "--sizes", "12", "--repeats", "1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| 12 MP"):
            rows[cells[1]] = cells
    assert set(rows) == {"JPEG", "AVIF", "HEIC"}, result.stdout
    for name, (_, _, size, seconds, peak, difference) in rows.items():
        assert size.endswith(" MB") and seconds.endswith(")") and float(peak) >= 0, (name, rows[name])
        assert float(difference) < 5, f"{name}'s crop is not the JPEG's: {difference} levels apart on average"
