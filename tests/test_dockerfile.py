"""The container images (Dockerfile), built with buildah and run as a user runs them.

Long (a fresh build installs the whole environment), so they run only with CLIPBOT_IMAGE_TEST=1,
which `.ci/run` sets every time, after the rest of the suite. By hand:

    CLIPBOT_IMAGE_TEST=1 .venv/bin/python -m pytest -q -p no:randomly -m image tests/test_dockerfile.py

Each image answers `clipbot similar` and `clipbot classify` with the tiny CLIP mounted, with the
scores this checkout computes; it runs as its own user and holds none of the build's secrets.
The GPU image is checked for everything but a GPU: CUDA is offered, and without a GPU it falls
back to the CPU, says so in one line, and answers the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support import images
from tests.support.badimages import as_phone_saves
from tests.support.paths import REPO, TINY_MODEL_DIR
from tests.support.shapes import render

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(
        os.environ.get("CLIPBOT_IMAGE_TEST") != "1", reason="image builds are long: CLIPBOT_IMAGE_TEST=1 runs them"
    ),
]

#: In the build context (.env) and in the pip.conf build secret: neither may reach the image.
TOKEN_CANARY = "clipbot-image-test-token-canary-7f3a9c"
PIP_CONF_CANARY = "clipbot-image-test-pip-conf-canary-52e1b0"
LABELS = ["red square", "yellow circle", "blue triangle", "green circle"]
PHRASES = ["a yellow circle", "a red square", "a blue triangle"]
USER_ID = "10001"
#: The circle as a phone or a browser saves it, stored sideways with EXIF orientation 6: file name -> format.
PHONE_FORMATS = {"circle.avif": "AVIF", "circle.heic": "HEIF"}


def build_context(tmp: Path) -> Path:
    """This checkout's files plus a .env with a token, as in a user's checkout."""
    context = tmp / "context"
    shutil.copytree(
        REPO,
        context,
        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"),
        symlinks=True,
    )
    (context / ".env").write_text(f"DISCORD_TOKEN={TOKEN_CANARY}\n")
    return context


def built_image(variant: str, tmp: Path) -> str:
    problem = images.tools_problem()
    if problem:
        pytest.skip(problem)
    return images.build(variant, build_context(tmp), pip_conf_comment=PIP_CONF_CANARY)


class Container:
    """A working container of an image, run with chroot isolation (no cgroups here)."""

    def __init__(self, image: str) -> None:
        self.name = images.buildah("from", "--pull-never", image).stdout.strip()

    def run(
        self, *command: str, volumes: dict[Path, str] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        options = ["--isolation", "chroot"]
        for host, inside in (volumes or {}).items():
            options += ["--volume", f"{host}:{inside}:ro"]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        return subprocess.run(
            ["buildah", "run", *options, self.name, "--", *command], capture_output=True, text=True, timeout=600
        )

    def remove(self) -> None:
        images.buildah("rm", self.name, check=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("image-work")
    circle = render("yellow circle", np.random.default_rng(42))
    circle.save(folder / "circle.png")
    for name, fmt in PHONE_FORMATS.items():
        (folder / name).write_bytes(as_phone_saves(circle, fmt))
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def container_of(variant: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """The image's container for one test class."""
    container = Container(built_image(variant, tmp_path_factory.mktemp(f"build-{variant}")))
    try:
        yield container
    finally:
        container.remove()


@pytest.fixture(scope="module", autouse=True)
def build_cache() -> Iterator[None]:
    """Both images and buildah's layer cache, removed after the last test (they are GBs).

    Built CPU first (the file's order), the GPU image reuses the CPU image's dependency layers
    and adds only its own, and a build briefly needs more than three times the layers it adds
    on disk (the working container, pip's downloads, the layer as it is committed, the stored
    layer).
    """
    yield
    for variant in ("cpu", "gpu"):
        images.remove(variant)
    images.prune()


@pytest.fixture(scope="class")
def cpu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    yield from container_of("cpu", tmp_path_factory)


@pytest.fixture(scope="class")
def gpu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    yield from container_of("gpu", tmp_path_factory)


def local_json(*args: str, cwd: Path) -> dict:
    """The same command from this checkout's own environment (the reference scores)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "CLIP_MODEL_DIR")}
    environment.update(
        {
            "MODEL_CACHE_DIR": str(cwd / "local-cache"),
            "CLIP_EXECUTION_PROVIDERS": "CPUExecutionProvider",
            "PYTHONPATH": str(REPO),
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cosines(payload: dict) -> dict[str, float]:
    return {row["label"]: row["cosine"] for row in payload["results"]}


def container_answers_like_the_checkout(container: Container, work: Path, env: dict[str, str]) -> str:
    """classify and similar in the container against the checkout; returns the containers' stderr."""
    mounts = {TINY_MODEL_DIR: "/model", work: "/work"}
    classify = ("classify", "--labels", ", ".join(LABELS), "--json", "--model-dir")
    inside = container.run("clipbot", classify[0], "/work/circle.png", *classify[1:], "/model", volumes=mounts, env=env)
    assert inside.returncode == 0, inside.stderr
    here = local_json(classify[0], str(work / "circle.png"), *classify[1:], str(TINY_MODEL_DIR), cwd=work)
    in_image = json.loads(inside.stdout)
    assert in_image["results"][0]["label"] == "yellow circle"
    assert cosines(in_image) == pytest.approx(cosines(here), abs=1e-4)

    similar = ("similar", "a circle", "--others", ", ".join(PHRASES), "--json", "--model-dir")
    inside_similar = container.run("clipbot", *similar, "/model", volumes=mounts, env=env)
    assert inside_similar.returncode == 0, inside_similar.stderr
    here_similar = local_json(*similar, str(TINY_MODEL_DIR), cwd=work)
    assert cosines(json.loads(inside_similar.stdout)) == pytest.approx(cosines(here_similar), abs=1e-4)
    return inside.stderr + inside_similar.stderr


def assert_holds_no_secret(container: Container, variant: str) -> None:
    """Neither the .env of the build context nor the pip.conf / CA build secrets end up in a layer."""
    mount = images.buildah("mount", container.name).stdout.strip()
    try:
        found = subprocess.run(
            ["grep", "-r", "-l", "-F", "-e", TOKEN_CANARY, "-e", PIP_CONF_CANARY, mount],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert found.stdout == "", f"secrets in the image: {found.stdout}"
        assert not (Path(mount) / "etc/pip.conf").exists()
        assert not (Path(mount) / "run/secrets").exists() or not any((Path(mount) / "run/secrets").iterdir())
        assert not (Path(mount) / "app/.env").exists()
    finally:
        images.buildah("umount", container.name, check=False)
    history = images.buildah("inspect", "--type", "image", images.image_name(variant)).stdout
    assert TOKEN_CANARY not in history and PIP_CONF_CANARY not in history


def layer_digests(variant: str) -> list[str]:
    """The image's layers (uncompressed digests), base first."""
    config = json.loads(images.buildah("inspect", "--type", "image", images.image_name(variant)).stdout)
    return list(config["OCIv1"]["rootfs"]["diff_ids"])


class TestCpuImage:
    """The default image, as most users run it."""

    def test_answers_with_the_checkouts_scores(self, cpu: Container, work: Path) -> None:
        container_answers_like_the_checkout(cpu, work, env={})

    def test_reads_avif_and_heic_like_the_checkout(self, cpu: Container, work: Path) -> None:
        """The decoders are compiled libraries inside wheels (libavif in Pillow's, libheif in
        pillow-heif's): the image's must read a phone's photos as this checkout's do."""
        mounts = {TINY_MODEL_DIR: "/model", work: "/work"}
        classify = ("--labels", ", ".join(LABELS), "--json", "--model-dir")
        for name in PHONE_FORMATS:
            inside = cpu.run("clipbot", "classify", f"/work/{name}", *classify, "/model", volumes=mounts)
            assert inside.returncode == 0, (name, inside.stderr)
            here = local_json("classify", str(work / name), *classify, str(TINY_MODEL_DIR), cwd=work)
            in_image = json.loads(inside.stdout)
            assert in_image["results"][0]["label"] == "yellow circle", name
            # AV1 and HEVC decoding are bit-exact by their standards; the colour conversion after
            # them may round differently between library versions, hence a looser tolerance.
            assert cosines(in_image) == pytest.approx(cosines(here), abs=1e-3), name

    def test_runs_as_its_own_user_with_no_cuda(self, cpu: Container) -> None:
        result = cpu.run("sh", "-c", "id -u; python -c 'import torch; print(torch.version.cuda)'")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [USER_ID, "None"], "non-root, and torch is the CPU build"
        # Where the nvidia-*-cu1x packages put CUDA, cuDNN, cuBLAS (PyPI's torch pulls them in).
        listing = cpu.run(
            "sh", "-c", "ls -d /app/.venv/lib/python3*/site-packages/nvidia; find / -xdev -name 'libcudnn*'"
        )
        assert listing.stdout.strip() == "", f"CUDA libraries in the CPU image: {listing.stdout}"

    def test_model_cache_and_data_are_volumes(self, cpu: Container) -> None:
        config = json.loads(images.buildah("inspect", "--type", "image", images.image_name("cpu")).stdout)
        image_config = config["OCIv1"]["config"]
        assert set(image_config["Volumes"]) == {"/models", "/data"}
        assert "MODEL_CACHE_DIR=/models" in image_config["Env"] and "DATA_DIR=/data" in image_config["Env"]
        assert image_config["User"] == "clipbot"
        writable = cpu.run("sh", "-c", "touch /models/x /data/x && ! touch /app/x 2>/dev/null && echo ok")
        assert writable.stdout.strip() == "ok", writable.stderr

    def test_bad_configuration_exits_78(self, cpu: Container) -> None:
        """A supervisor (compose's restart: on-failure) sees the same exit code as under systemd."""
        result = cpu.run("clipbot", "run", env={"DISCORD_TOKEN": "x", "MAX_LABELS": "many"})
        assert result.returncode == 78, (result.returncode, result.stderr)
        assert "error: setting MAX_LABELS" in result.stderr

    def test_image_holds_no_secret(self, cpu: Container) -> None:
        assert_holds_no_secret(cpu, "cpu")


class TestGpuImage:
    """Checked for everything but a GPU."""

    def test_offers_cuda_and_falls_back_to_the_cpu(self, gpu: Container, work: Path) -> None:
        offered = gpu.run("python", "-c", "import onnxruntime as o; print(','.join(o.get_available_providers()))")
        assert offered.returncode == 0, offered.stderr
        assert "CUDAExecutionProvider" in offered.stdout.split(",")
        # Its default providers (CUDA, then CPU) on a machine with no GPU: the same answers, on the CPU.
        stderr = container_answers_like_the_checkout(gpu, work, env={})
        fallback = [line for line in stderr.splitlines() if "fell back to CPUExecutionProvider" in line]
        assert len(fallback) == 2, stderr  # one line for each of the two commands
        user = gpu.run("id", "-u")
        assert user.stdout.strip() == USER_ID

    def test_image_holds_no_secret(self, gpu: Container) -> None:
        assert_holds_no_secret(gpu, "gpu")

    def test_shares_the_cpu_images_dependency_layers(self, gpu: Container, cpu: Container) -> None:
        """A host with both images stores the dependencies once: the GPU image adds one layer
        (onnxruntime-gpu, CUDA, cuDNN) to the CPU image's, then its own copy of the code (small
        layers, which cannot be shared: their parent differs)."""
        cpu_layers, gpu_layers = layer_digests("cpu"), layer_digests("gpu")
        # The CPU image: its dependency layers, then COPY README.md and COPY bot.
        dependencies = cpu_layers[:-2]
        assert gpu_layers[: len(dependencies)] == dependencies, "not built on the CPU image's dependencies"
        assert len(gpu_layers) == len(cpu_layers) + 1, "one layer of its own"
