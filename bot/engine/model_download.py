"""First-run download of the CLIP model from Roboflow, through our resumable transfer.

Why not inference's own downloader: `RoboflowCoreModel.download_model_from_roboflow_api`
(inference 1.8.3) fetches each file whole into memory (`response.content`) and then
writes it, so a ~600 MB ViT-B-16 download is silent for minutes, peaks at the file's
size in memory, and starts over after any interruption. So the bot downloads first
(`bot.engine.transfer.ModelDownload`: resume, verification, one-line errors), and
inference then finds every file in its cache (`are_all_files_cached`) and skips its
own download. Progress: `bot.engine.download_progress`.

What is still inference's: the metadata request (`get_roboflow_model_data`: its URL
under `API_BASE_URL`, query, `api_key`, headers and HTTP-error mapping), the file
naming (the last segment of each signed URL's path), the cache layout
(`get_cache_dir(model_id)`), the per-model lock file it uses for downloads (so a
bot and inference never write the same folder at once), and its URL wrapping and
request headers for the file requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot.config import Settings
from bot.engine.download_progress import Reporter, describe_eta, progress_for
from bot.engine.transfer import MAX_RETRY_WAIT_S, SIGNED_QUERY, ModelDownload
from bot.errors import ConfigError, StartupError, first_line

__all__ = ["CLIP_FILES", "describe_eta", "ensure_model_downloaded", "progress_for"]

log = logging.getLogger(__name__)

#: What `inference.models.Clip.get_infer_bucket_file_list` requires (checked by a test).
CLIP_FILES = ("textual.onnx", "visual.onnx")


def ensure_model_downloaded(
    settings: Settings, model_id: str, *, stream: TextIO | None = None, stop: threading.Event | None = None
) -> None:
    """Put `model_id`'s files into inference's cache unless they are all there already.

    `stop`: set by the owner to end the transfer early (see `ModelDownload`).

    Call after `configure_inference_env` (inference reads its env at import). Does
    nothing when the files are cached, in offline mode (inference then reports the
    missing files itself), or when inference is set up to read an S3 bucket.
    """
    from inference.core import env as inference_env
    from inference.core.cache.model_artifacts import are_all_files_cached, get_cache_dir
    from inference.models.aliases import resolve_roboflow_model_alias

    endpoint = resolve_roboflow_model_alias(model_id=model_id)
    if are_all_files_cached(files=list(CLIP_FILES), model_id=endpoint) or inference_env.OFFLINE_MODE:
        return
    from inference.core.models.roboflow import is_model_artefacts_bucket_available

    if is_model_artefacts_bucket_available():
        return
    from filelock import FileLock, Timeout

    folder = Path(get_cache_dir(model_id=endpoint))
    lock_dir = Path(inference_env.MODEL_CACHE_DIR) / "_file_locks"  # inference's own download lock
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_dir / f"{folder.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("Another process is downloading CLIP %s into %s; waiting for it", model_id, folder)
        lock.acquire()
    try:
        if are_all_files_cached(files=list(CLIP_FILES), model_id=endpoint):
            return
        progress = progress_for(model_id)
        download = ModelDownload(
            label=model_id,
            folder=folder,
            get_urls=_inference_urls(settings, model_id, endpoint),
            progress=progress,
            reporter=Reporter(model_id, progress, stream=stream, every_s=settings.model_download_log_every_s),
            tries=settings.model_download_tries,
            timeout_s=settings.model_download_timeout_s,
            retry_wait_s=settings.model_download_retry_wait_s,
            headers=_inference_headers,
            wrap_url=_inference_wrap_url,
            required=CLIP_FILES,
            stop=stop,
        )
        try:
            download.run()
        except StartupError:
            raise
        except Exception as exc:  # unforeseen: still one line, without a signed URL's query
            detail = SIGNED_QUERY.sub("?...", first_line(exc) if str(exc).strip() else "")
            raise StartupError(
                f"Downloading CLIP {model_id} failed ({type(exc).__name__}: {detail[:200]}); run again to resume."
            ) from exc
    finally:
        lock.release()


def _inference_headers() -> dict[str, Any]:
    from inference.core.roboflow_api import build_roboflow_api_headers

    return dict(build_roboflow_api_headers())


def _inference_wrap_url(url: str) -> str:
    from inference.core.utils.url_utils import wrap_url

    return wrap_url(url)


def _inference_urls(settings: Settings, label: str, endpoint: str) -> Callable[[bool], dict[str, str]]:
    """`get_urls` through inference's own metadata request, its errors turned into one line each."""

    def get_urls(fresh: bool) -> dict[str, str]:
        from inference.core import env as inference_env
        from inference.core.devices.utils import GLOBAL_DEVICE_ID
        from inference.core.exceptions import (
            RoboflowAPIConnectionError,
            RoboflowAPIForbiddenError,
            RoboflowAPINotAuthorizedError,
            RoboflowAPINotNotFoundError,
            RoboflowAPITimeoutError,
        )
        from inference.core.roboflow_api import ModelEndpointType, get_roboflow_model_data

        host = urlsplit(inference_env.API_BASE_URL).netloc or inference_env.API_BASE_URL
        tries = settings.model_download_tries
        for attempt in range(1, tries + 1):
            try:
                data = get_roboflow_model_data(
                    api_key=inference_env.API_KEY,
                    model_id=endpoint,
                    endpoint_type=ModelEndpointType.CORE_MODEL,
                    device_id=GLOBAL_DEVICE_ID,
                    use_cache=not fresh,
                )
                break
            except (RoboflowAPINotAuthorizedError, RoboflowAPIForbiddenError) as exc:
                status = 401 if isinstance(exc, RoboflowAPINotAuthorizedError) else 403
                raise ConfigError(
                    f"Roboflow refused CLIP model {label} (HTTP {status}); check ROBOFLOW_API_KEY "
                    "(a wrong or revoked key is refused; CLIP needs none) and CLIP_MODEL_ID."
                ) from None
            except RoboflowAPINotNotFoundError:
                raise ConfigError(
                    f"Roboflow has no CLIP model {label} (HTTP 404); check CLIP_MODEL_ID "
                    "(e.g. clip/ViT-B-16, clip/ViT-B-32, clip/ViT-L-14)."
                ) from None
            except (RoboflowAPIConnectionError, RoboflowAPITimeoutError):
                if attempt == tries:
                    raise StartupError(
                        f"Could not reach Roboflow ({host}) to download CLIP {label} after {tries} tries; "
                        "check the network, or set CLIP_MODEL_DIR to a folder with visual.onnx and textual.onnx."
                    ) from None
                time.sleep(min(MAX_RETRY_WAIT_S, settings.model_download_retry_wait_s * 2 ** (attempt - 1)))
            except Exception as exc:  # other API answers: their class names the case, never the URL
                raise StartupError(
                    f"Roboflow's API could not give CLIP model {label} ({type(exc).__name__}); try again later."
                ) from None
        weights = data.get("weights") if isinstance(data, dict) else None
        if not isinstance(weights, dict) or not weights:
            raise StartupError(f"Roboflow's answer for CLIP model {label} lists no files; try again later.")
        # inference names each file after its URL's last path segment (download_model_from_roboflow_api).
        return {str(url).split("?")[0].split("/")[-1]: str(url) for url in weights.values()}

    return get_urls
