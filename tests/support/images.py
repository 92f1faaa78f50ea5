"""Build and run clipbot's container images with buildah, as the image tests and `.ci/run` do.

No Docker engine here: buildah builds the Dockerfile on a `debian:bookworm-slim` bootstrapped with
debootstrap (the same Debian release the official image is cut from), and runs it with chroot
isolation (the default OCI runtime cannot create containers without cgroups).

The proxy build option of the README is what reaches PyPI here: pip's configuration becomes the
`pip.conf` build secret, the CA bundle the `proxy-ca` secret, and the local wheel folders and
indexes the configuration names are mounted read-only for the build only.

    python -m tests.support.images build cpu   # localhost/clipbot:cpu
    python -m tests.support.images build gpu   # localhost/clipbot:gpu
    python -m tests.support.images check       # exit 1 (and why) where images cannot be built
    python -m tests.support.images cpu-torch   # TORCH_INDEX_URL=... TORCH_VERSION=... of a local CPU torch
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from tests.support.paths import REPO

BASE_IMAGE = "localhost/debian:bookworm-slim"
DEBIAN_MIRROR_DEFAULT = "http://deb.debian.org/debian"


def image_name(variant: str) -> str:
    return f"localhost/clipbot:{variant}"


def tools_problem() -> str | None:
    """Why images cannot be built here (None: they can), installing buildah and debootstrap as root."""
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "buildah", "debootstrap"], env=env, capture_output=True)
        missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} missing (Debian: apt-get install buildah debootstrap, as root)"
    if os.geteuid() != 0:
        return "building images with buildah here needs root (debootstrap and chroot isolation)"
    return None


def buildah(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout, check=check)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (a mirror the network here allows)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file():
            continue
        for match in re.finditer(r"(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(\S+/debian)/?\s", source.read_text(), re.M):
            return match.group(1)
    return DEBIAN_MIRROR_DEFAULT


def ensure_base_image() -> str:
    """`localhost/debian:bookworm-slim`: a minimal bookworm root file system, bootstrapped once."""
    if buildah("inspect", "--type", "image", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="clipbot-bookworm-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", rootfs, debian_mirror()],
            check=True,
            capture_output=True,
            timeout=900,
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (Path(rootfs) / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        container = buildah("from", "scratch").stdout.strip()
        try:
            mount = buildah("mount", container).stdout.strip()
            subprocess.run(["cp", "-a", f"{rootfs}/.", mount], check=True)
            buildah("umount", container)
            buildah("config", "--cmd", "/bin/bash", container)
            buildah("commit", "--quiet", container, BASE_IMAGE, timeout=900)
        finally:
            buildah("rm", container, check=False)
    return BASE_IMAGE


def pip_settings() -> dict[str, str]:
    """pip's effective configuration here (files and PIP_* variables; variables win, as in pip)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, str] = {}
    environment: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.fullmatch(r"(:env:|[\w-]+)\.([\w-]+)='(.*)'", line.strip())
        if match:
            (environment if match.group(1) == ":env:" else settings)[match.group(2)] = match.group(3)
    return settings | environment


def proxy_build_options(workdir: Path, comment: str = "") -> list[str]:
    """buildah options giving the build this machine's pip setup: the README's proxy option.

    The CA bundle and pip.conf are build secrets (mounted for the install step only); local
    wheel folders and file:// indexes that pip.conf names are mounted read-only.
    """
    settings = pip_settings()
    options: list[str] = []
    mounts: set[str] = set()
    lines = [f"# {comment}", "[global]"] if comment else ["[global]"]
    for key, value in settings.items():
        if key in ("cert", "client-cert"):
            if key == "cert":
                options += ["--secret", f"id=proxy-ca,src={value}"]
                lines.append("cert = /run/secrets/proxy-ca")
            continue
        if key in ("find-links", "extra-index-url", "index-url", "constraint"):
            for item in value.split():
                path = urlparse(item).path if item.startswith("file://") else item
                if path.startswith("/") and Path(path).exists():
                    mounts.add(str(Path(path).parent if path.rstrip("/").endswith("/simple") else path))
        lines.append(f"{key} = {value}")
    conf = workdir / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    options += ["--secret", f"id=pip.conf,src={conf}"]
    for mount in sorted(mounts):
        options += ["--volume", f"{mount}:{mount}:ro"]
    return options


def local_cpu_torch() -> tuple[str, str] | None:
    """Where a CPU build of torch comes from here, as (TORCH_INDEX_URL, TORCH_VERSION) for
    `scripts/install.sh --slim`: pip's own sources ("", the version) where a wheel folder that
    pip's configuration names holds one; CLIPBOT_TORCH_INDEX_URL / CLIPBOT_TORCH_VERSION set
    it by hand. None: no CPU build is known here."""
    index, version = os.environ.get("CLIPBOT_TORCH_INDEX_URL"), os.environ.get("CLIPBOT_TORCH_VERSION")
    if index is not None:
        return index, version or ""
    for folder in pip_settings().get("find-links", "").split():
        for wheel in sorted(Path(folder).glob("torch-*+cpu-*.whl")) if Path(folder).is_dir() else []:
            return "", wheel.name.split("-")[1].split("+")[0]
    return None


def torch_build_args() -> list[str]:
    """Where the images' CPU torch comes from: PyTorch's CPU index (the Dockerfile's default)
    unless a CPU build is known here (`local_cpu_torch`)."""
    found = local_cpu_torch()
    if found is None:
        return []
    index, version = found
    return ["--build-arg", f"TORCH_INDEX_URL={index}", "--build-arg", f"TORCH_VERSION={version}"]


def build(variant: str, context: Path = REPO, pip_conf_comment: str = "", timeout: float = 3600) -> str:
    """Build the `variant` image (cpu or gpu) from `context`; returns its name."""
    base = ensure_base_image()
    name = image_name(variant)
    with tempfile.TemporaryDirectory(prefix="clipbot-image-build-") as workdir:
        command = [
            "buildah", "bud", "--isolation", "chroot", "--network", "host", "--layers",
            "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"VARIANT={variant}",
            *torch_build_args(), *proxy_build_options(Path(workdir), pip_conf_comment),
            "--tag", name, str(context),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        output = f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
        raise RuntimeError(f"buildah bud failed ({result.returncode}):\n{output}")
    return name


def remove(variant: str) -> None:
    """Remove the `variant` image (and the build-cache images only it was built on)."""
    buildah("rmi", "--force", image_name(variant), check=False, timeout=900)


def prune() -> None:
    """Remove untagged images: the build cache, GBs after each build."""
    buildah("rmi", "--prune", check=False, timeout=900)


def main(argv: Sequence[str]) -> int:
    if argv == ["cpu-torch"]:
        # For scripts/test.sh: the environment for install.sh --slim, or exit 1.
        found = local_cpu_torch()
        if found is None:
            return 1
        print(f"TORCH_INDEX_URL={found[0]} TORCH_VERSION={found[1]}")
        return 0
    if argv not in (["check"], ["build", "cpu"], ["build", "gpu"]):
        print("usage: python -m tests.support.images build cpu|gpu | check | cpu-torch", file=sys.stderr)
        return 2
    problem = tools_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if argv == ["check"]:
        return 0
    name = build(argv[1])
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
