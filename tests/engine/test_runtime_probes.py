"""The probes a reduced-precision runtime is checked on (`bot.engine.runtime_probes`)."""

from __future__ import annotations

import numpy as np

from bot.engine.runtime_probes import PROBE_PROMPTS, probe_images


def test_probe_images_are_several_kinds_of_picture() -> None:
    pictures = probe_images()
    assert len(pictures) >= 8
    arrays = [np.asarray(picture.convert("RGB"), dtype=np.float32) for picture in pictures]
    means = [a.mean() for a in arrays]
    assert min(means) < 40 and max(means) > 150, "dark and bright pictures"
    assert len({round(float(a.std())) for a in arrays}) == len(arrays), "no two alike"


def test_probe_prompts_are_a_few_dozen_distinct_prompts() -> None:
    assert len(PROBE_PROMPTS) >= 20 and len(set(PROBE_PROMPTS)) == len(PROBE_PROMPTS)
