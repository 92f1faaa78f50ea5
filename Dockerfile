# syntax=docker/dockerfile:1
# clipbot's container images (README, "Docker"). Both start from Debian bookworm; neither needs a
# CUDA base image.
#
#   docker build -t clipbot .                                  # CPU (the default)
#   docker build --build-arg VARIANT=gpu -t clipbot:gpu .      # NVIDIA GPU: CUDA and cuDNN from pip
#   docker run -e DISCORD_TOKEN=... -v clipbot-models:/models -v clipbot-data:/data clipbot
#
# Behind a proxy that intercepts TLS, hand pip its configuration and the proxy's CA as build
# secrets: they are mounted for the install step only and never stored in a layer.
#
#   docker build --secret id=pip.conf,src=./pip.conf --secret id=proxy-ca,src=./proxy-ca.pem .
#   (pip.conf: [global] index-url = <your mirror>, cert = /run/secrets/proxy-ca)
#
# An image has no restart policy: give one to the container (docker run --restart on-failure:5,
# or compose's restart:); exit code 78 means a configuration error that a restart cannot fix
# (README, "Running for the long term").
ARG BASE_IMAGE=debian:bookworm-slim
# cpu | gpu: which dependencies stage the image is built on (the last FROM).
ARG VARIANT=cpu

# The dependencies of the CPU image. No compilers are installed, and the install step leaves no
# pip cache or bytecode behind, so there is no build stage to leave behind either.
FROM ${BASE_IMAGE} AS deps-cpu
# Where the CPU build of torch comes from (inference needs torch, never for the model itself).
# Empty: pip's configured sources; TORCH_VERSION pins one found there (scripts/install.sh --slim).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
# Python and its venv module, and the two shared libraries OpenCV (imported by inference) loads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv libgl1 libglib2.0-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && useradd --create-home --uid 10001 --user-group clipbot \
 && mkdir -p /models /data \
 && chown clipbot:clipbot /models /data
WORKDIR /app
COPY pyproject.toml ./
COPY scripts/install.sh scripts/install.sh
# The dependencies get layers of their own, so that editing the code or the README rebuilds
# only the COPY steps at the end. The editable install needs a `bot` package to point at: a
# placeholder now, the real one copied over it at the end. Bytecode is a sixth of the venv:
# it is removed in the same step (a later step could only hide it), and each container
# compiles what it imports on its first start instead (PYTHONPYCACHEPREFIX below), which later
# starts of that container reuse.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=proxy-ca \
    mkdir bot && touch bot/__init__.py README.md \
 && TORCH_INDEX_URL="$TORCH_INDEX_URL" TORCH_VERSION="$TORCH_VERSION" \
    scripts/install.sh --slim --cpu \
 && rm -rf /root/.cache \
 && find .venv -name __pycache__ -prune -exec rm -rf {} +

# The GPU image's dependencies: the CPU image's plus one layer with onnxruntime-gpu and the CUDA 12
# and cuDNN 9 pip packages, in place of onnxruntime. Both images on one host share the rest.
FROM deps-cpu AS deps-gpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=proxy-ca \
    TORCH_INDEX_URL="$TORCH_INDEX_URL" TORCH_VERSION="$TORCH_VERSION" \
    scripts/install.sh --slim --gpu \
 && rm -rf /root/.cache \
 && find .venv -name __pycache__ -prune -exec rm -rf {} +

FROM deps-${VARIANT}
# Set after the install: with PYTHONPYCACHEPREFIX set there, pip would write the venv's bytecode
# into the clipbot user's cache, as root.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONPYCACHEPREFIX=/home/clipbot/.cache/pycache \
    MODEL_CACHE_DIR=/models \
    DATA_DIR=/data
COPY README.md ./
# Root owns the code and the venv: the bot cannot rewrite itself.
COPY bot bot
USER clipbot
# Downloaded CLIP weights (ViT-B-16: ~600 MB) survive container restarts.
VOLUME ["/models"]
# The SQLite database and the Milvus Lite file, unless DATABASE_URL / VECTOR_DB_URL name servers.
VOLUME ["/data"]
# The token comes from the environment (docker run -e / --env-file), never the image.
CMD ["clipbot", "run"]
