"""`python -m bot classify|similar|run` as a user runs it (a subprocess each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.engine.loading import OFFLINE_LATCH_ENV
from tests.support.badimages import corpus
from tests.support.cli import run_cli
from tests.support.paths import TINY_MODEL_DIR
from tests.support.shapes import render


def shape_file(tmp_path: Path, label: str, seed: int) -> Path:
    path = tmp_path / f"{label.replace(' ', '-')}.png"
    render(label, np.random.default_rng(seed)).save(path)
    return path


@pytest.mark.slow  # a whole CLI run that loads the model
def test_classify_json_is_ranked_and_matches_the_seed_compare(tmp_path: Path) -> None:
    image = shape_file(tmp_path, "yellow circle", 42)
    labels = ["red square", "yellow circle", "blue triangle", "green circle"]
    result = run_cli(
        "classify",
        str(image),
        "--labels",
        ", ".join(labels),
        "--json",
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert list(payload) == ["results", "frames", "runtime"] and payload["frames"] == 1, "a still picture: one frame"
    assert payload["runtime"] == "onnxruntime-fp32", "one-shot queries keep the exact fp32 path by default"
    rows = payload["results"]
    assert [set(r) for r in rows] == [{"label", "probability", "cosine", "truncated", "template_dropped"}] * 4
    assert not any(r["truncated"] or r["template_dropped"] for r in rows)
    assert rows[0]["label"] == "yellow circle"
    assert sorted(r["label"] for r in rows) == sorted(labels), "labels as given, without the template"
    assert sum(r["probability"] for r in rows) == pytest.approx(1.0)
    assert [r["cosine"] for r in rows] == sorted((r["cosine"] for r in rows), reverse=True)

    # The seed's own path on the same folder: inference's Clip.compare with the file path.
    from bot.engine.loading import configure_inference_env, import_clip_class, stage_local_model
    from tests.support.settings import make_settings

    configure_inference_env(make_settings())
    clip = import_clip_class()(
        model_id=stage_local_model(TINY_MODEL_DIR), onnxruntime_execution_providers=["CPUExecutionProvider"]
    )
    seed = clip.compare(subject=str(image), prompt=[f"a photo of a {label}" for label in labels])
    by_label = {r["label"]: r["cosine"] for r in rows}
    for label, cosine in zip(labels, seed, strict=True):
        assert by_label[label] == pytest.approx(float(cosine[0]), abs=1e-4)


@pytest.mark.slow  # a whole CLI run that loads the model
def test_classify_precision_is_chosen_on_request_and_named(tmp_path: Path) -> None:
    from bot.engine import runtimes

    image = shape_file(tmp_path, "yellow circle", 42)
    answers = {}
    for precision in ("fp32", "int8"):
        result = run_cli(
            "classify",
            str(image),
            "--labels",
            "red square, yellow circle, blue triangle",
            "--json",
            "--precision",
            precision,
            "--model-dir",
            str(TINY_MODEL_DIR),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        answers[precision] = json.loads(result.stdout)
    # int8 where this CPU has VNNI (checked against fp32 first); fp32 elsewhere.
    offered = runtimes.candidates_for("auto", "int8", runtimes.cpu_flags())
    assert answers["int8"]["runtime"] == offered[0].name
    exact = {r["label"]: r["cosine"] for r in answers["fp32"]["results"]}
    for row in answers["int8"]["results"]:
        assert row["cosine"] == pytest.approx(exact[row["label"]], abs=0.02)


@pytest.mark.slow  # a whole CLI run that loads the model
def test_classify_table_and_custom_template(tmp_path: Path) -> None:
    image = shape_file(tmp_path, "green triangle", 5)
    result = run_cli(
        "classify",
        str(image),
        "--labels",
        "green triangle, red circle",
        "--template",
        "none",
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "no template" in lines[0] and "CPU" in lines[0]
    assert lines[1].split()[1:3] == ["green", "triangle"]
    assert "%" in lines[1] and "cos" in lines[1]


@pytest.mark.slow  # a whole CLI run that loads the model
def test_similar_json_has_no_probability(tmp_path: Path) -> None:
    result = run_cli(
        "similar",
        "hello world",
        "--others",
        "globe, cat, dog",
        "--json",
        "--model-dir",
        str(TINY_MODEL_DIR),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    rows = payload["results"]
    assert sorted(r["label"] for r in rows) == ["cat", "dog", "globe"]
    assert all(set(r) == {"label", "cosine", "truncated"} and r["truncated"] is False for r in rows)
    assert payload["subject_truncated"] is False


def test_json_and_table_say_which_labels_were_cut_or_used_without_the_template() -> None:
    from bot.cli import format_table, ranking_json
    from bot.scoring import Score
    from bot.service import Ranking

    cat, long, wide = ("cat", "a photo of a cat", 0.3, 0.7), ("long", "lo", 0.2, 0.2), ("wide", "wide", 0.1, 0.1)
    scores = [Score(*cat), Score(*long), Score(*wide)]
    ranking = Ranking(scores=scores, template="a photo of a {}", truncated=["long"], template_dropped=["long", "wide"])
    rows = ranking_json(ranking, with_probability=True)["results"]
    assert [(r["label"], r["truncated"], r["template_dropped"]) for r in rows] == [
        ("cat", False, False),
        ("long", True, True),
        ("wide", False, True),
    ]
    table = format_table(ranking, with_probability=True, header="tiny").splitlines()
    assert table[1].endswith("cos 0.3000") and table[2].endswith("(cut)") and table[3].endswith("(no template)")
    assert "only the start was used" in table[4] and "without it" in table[5]
    similar = Ranking(scores=scores[:1], truncated=[], subject_truncated=True)
    assert ranking_json(similar, with_probability=False) == {
        "results": [{"label": "cat", "cosine": 0.3, "truncated": False}],
        "subject_truncated": True,
    }
    assert "the phrase" in format_table(similar, with_probability=False, header="tiny")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--labels", "only one"], "at least 2"),
        (["--labels", ",".join(f"l{i}" for i in range(40))], "40 given, at most 25"),
        (["--labels", "a, b", "--template", "a photo"], "exactly once"),
    ],
)
def test_bad_labels_are_one_line_on_stderr(tmp_path: Path, args: list[str], expected: str) -> None:
    image = shape_file(tmp_path, "red circle", 1)
    result = run_cli("classify", str(image), *args, "--model-dir", str(TINY_MODEL_DIR), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr


@pytest.mark.slow  # a whole CLI run that loads the model
def test_bad_files_are_one_line_on_stderr(tmp_path: Path) -> None:
    """The whole bad-image corpus through one CLI process each would be slow; use two representative ones."""
    cases = {"text-renamed-png": "not an image", "truncated-jpeg": "truncated"}
    for name, expected in cases.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(corpus()[name])
        result = run_cli(
            "classify",
            str(path),
            "--labels",
            "a, b",
            "--model-dir",
            str(TINY_MODEL_DIR),
            cwd=tmp_path,
            env={"LOG_LEVEL": "WARNING"},
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: ") and expected in result.stderr
        assert "Traceback" not in result.stderr
    missing = run_cli("classify", str(tmp_path / "nope.jpg"), "--labels", "a, b", cwd=tmp_path)
    assert missing.returncode == 2 and "No such file" in missing.stderr


@pytest.mark.slow  # a whole CLI run that loads the model
def test_start_up_failures_are_one_line_and_non_zero(tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "visual.onnx").write_bytes(b"")
    result = run_cli("similar", "a", "--others", "b", "--model-dir", str(incomplete), cwd=tmp_path)
    assert result.returncode == 78  # EX_CONFIG: a restart cannot fix it
    expected = f"error: CLIP_MODEL_DIR {incomplete} has no textual.onnx (a CLIP model folder holds visual.onnx"
    assert result.stderr.strip() == expected + " and textual.onnx)."

    offline = run_cli(
        "similar",
        "a",
        "--others",
        "b",
        "--model-id",
        "clip/ViT-B-32",
        cwd=tmp_path,
        # inference's offline latch as a parent that imported inference passes it on: it must not win
        env={"OFFLINE_MODE": "True", "LOG_LEVEL": "ERROR", OFFLINE_LATCH_ENV: "False"},
    )
    assert offline.returncode == 78
    assert (
        offline.stderr.strip().splitlines()[-1].startswith("error: CLIP model clip/ViT-B-32 is not in MODEL_CACHE_DIR")
    )
    assert "Traceback" not in offline.stderr

    no_token = run_cli("run", cwd=tmp_path)
    assert no_token.returncode == 78  # EX_CONFIG: a restart cannot fix it
    assert no_token.stderr.startswith("error: DISCORD_TOKEN is not set") and no_token.stderr.count("\n") == 1
    assert "python -m bot classify" in no_token.stderr
    assert "Traceback" not in no_token.stderr


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run_cli("similar", "a", "--others", "b", cwd=tmp_path, env={"MAX_LABELS": "many"})
    assert result.returncode == 78  # EX_CONFIG
    assert result.stderr.startswith("error: setting MAX_LABELS") and result.stderr.count("\n") == 1
