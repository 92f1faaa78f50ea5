# clipbot on an NVIDIA GPU: CUDA 12 + cuDNN 9 runtime, onnxruntime-gpu only.
#   docker build -t clipbot .
#   docker run --gpus all -e DISCORD_TOKEN=... -v clipbot-models:/models -v clipbot-data:/data clipbot
# An image has no restart policy: give one to the container (docker run --restart
# on-failure:5, or compose's restart:); exit code 78 means a configuration error that a
# restart cannot fix (README, "Running for the long term").
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODEL_CACHE_DIR=/models \
    DATA_DIR=/data \
    CLIP_EXECUTION_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider

# python3.12, and the shared libraries OpenCV (imported by inference) needs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 clipbot \
 && mkdir -p /app /models /data && chown clipbot:clipbot /app /models /data

WORKDIR /app
USER clipbot
COPY --chown=clipbot:clipbot pyproject.toml README.md ./
COPY --chown=clipbot:clipbot scripts/install.sh scripts/install.sh
COPY --chown=clipbot:clipbot bot bot
# --gpu: installs onnxruntime-gpu and removes the CPU onnxruntime that inference
# pulls in (the two overwrite each other's files), then checks CUDA is offered.
RUN scripts/install.sh --gpu

# Downloaded CLIP weights (ViT-B-16: ~600 MB) survive container restarts.
VOLUME ["/models"]
# The SQLite database (presets, recent label sets) unless DATABASE_URL names PostgreSQL.
VOLUME ["/data"]
# The token comes from the environment (docker run -e / --env-file), never the image.
CMD [".venv/bin/python", "-m", "bot", "run"]
