"""`/compare` on the tiny model's held-out shapes, and `@name` preset expansion."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bot.errors import ImageError, LabelError
from bot.label_sets import MAX_REFERENCES, expand_presets, references
from bot.service import ClipService
from bot.storage.presets import Preset
from tests.support.shapes import CLASSES, HELDOUT_SEED, shape_png


async def test_compare_ranks_the_same_shape_and_colour_first(service: ClipService) -> None:
    """Unseen images: the other picture of the first one's class outranks every other class."""
    rng = np.random.default_rng(HELDOUT_SEED + 7)
    trials, correct = 24, 0
    jobs = []
    for i in range(trials):
        target = CLASSES[i % len(CLASSES)]
        distractors = [c for c in CLASSES if c != target]
        picks = [distractors[int(j)] for j in rng.choice(len(distractors), size=5, replace=False)]
        labels = [target, *picks]
        order = list(rng.permutation(len(labels)))
        others = [labels[k] for k in order]
        images = [shape_png(target, int(rng.integers(1 << 31)))]
        images += [shape_png(label, int(rng.integers(1 << 31))) for label in others]
        jobs.append(service.compare_images(images, ["query", *others]))
        correct += 0
    rankings = await asyncio.gather(*jobs)
    for i, ranking in enumerate(rankings):
        correct += ranking.best.label == CLASSES[i % len(CLASSES)]
        cosines = [s.cosine for s in ranking.scores]
        assert cosines == sorted(cosines, reverse=True)
    assert correct >= 0.9 * trials, f"{correct}/{trials}"


async def test_compare_names_the_bad_image_by_position(service: ClipService) -> None:
    good = shape_png("red circle", 1)
    with pytest.raises(ImageError, match=r"^Image 3: .*not an image"):
        await service.compare_images([good, good, b"this is text"], ["a", "b", "c"])


async def _resolver(name: str) -> Preset | None:
    presets = {
        "animals": Preset("user", 1, "animals", ["cat", "dog", "fox"], 1),
        "birds": Preset("guild", 9, "birds", ["owl", "crow"], 2),
    }
    return presets.get(name)


async def test_preset_references_expand_in_place_and_mix_with_plain_labels() -> None:
    items = await expand_presets("horse, @Animals , @birds,sheep", _resolver)
    assert [item.strip() for item in items] == ["horse", "cat", "dog", "fox", "owl", "crow", "sheep"]
    assert await expand_presets("cat, dog", _resolver) == ["cat", " dog"], "no @: untouched"
    assert await expand_presets("email me @ noon, cat", _resolver) == ["email me @ noon", " cat"]
    assert await expand_presets("@everyone, @here, @animals", _resolver) == ["@everyone", " @here", "cat", "dog", "fox"]


async def test_an_unknown_preset_or_too_many_are_one_line() -> None:
    with pytest.raises(LabelError, match="no preset named `@plants`"):
        await expand_presets("@plants, cat", _resolver)
    with pytest.raises(LabelError, match=f"At most {MAX_REFERENCES} presets"):
        await expand_presets(", ".join(["@animals"] * (MAX_REFERENCES + 1)), _resolver)
    assert references("@a, b, @c-d") == ["a", "c-d"]


def test_suggestions_complete_the_item_being_typed_within_discords_limits() -> None:
    from bot.label_sets import CHOICE_CHARS, MAX_CHOICES, suggestions

    presets = [Preset("user", 1, f"animals{i}", ["cat", "dog"], 1) for i in range(30)]
    recent = [["red circle", "blue square"], ["x" * 60, "y" * 60]]  # the second is over 100 characters
    typed = suggestions("horse, @ani", presets, recent)
    assert len(typed) == MAX_CHOICES
    assert typed[0] == ("@animals0 (yours): cat, dog", "horse, @animals0")
    first = suggestions("circle", presets[:1], recent)
    assert first[0] == ("recent: red circle, blue square", "red circle, blue square"), "recent sets first"
    assert all(len(name) <= CHOICE_CHARS and len(value) <= CHOICE_CHARS for name, value in first)
    long_head = suggestions("a" * 95 + ", @an", presets[:1], recent)
    assert long_head == [], "a value over 100 characters cannot be offered"


async def test_ensemble_scores_equal_a_numpy_reference_from_each_templates_embeddings(service: ClipService) -> None:
    from bot.labels import ENSEMBLE, ENSEMBLE_TEMPLATES
    from bot.scoring import zero_shot_probabilities

    labels = ["red circle", "blue square", "green triangle", "yellow circle"]
    image = shape_png("green triangle", 99)
    ranking = await service.classify(image, labels, ENSEMBLE)
    embedder = service.embedder
    image_vec = np.asarray(await embedder.embed_image(image), dtype=np.float64)
    classifiers = []
    for label in labels:
        prompts = [template.replace("{}", label) for template in ENSEMBLE_TEMPLATES]
        vecs = np.asarray(await embedder.embed_texts(prompts), dtype=np.float64)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        mean = vecs.mean(axis=0)
        classifiers.append(mean / np.linalg.norm(mean))
    cosines = np.stack(classifiers) @ (image_vec / np.linalg.norm(image_vec))
    probabilities = zero_shot_probabilities(cosines)
    got = {s.label: (s.cosine, s.probability) for s in ranking.scores}
    for label, cosine, probability in zip(labels, cosines, probabilities, strict=True):
        assert got[label][0] == pytest.approx(cosine, abs=1e-6)
        assert got[label][1] == pytest.approx(probability, abs=1e-6)
    assert ranking.best.label == "green triangle" and ranking.template == ENSEMBLE
