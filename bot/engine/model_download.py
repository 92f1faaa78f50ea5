"""First-run download of the CLIP model: progress, resume, verification, one-line errors.

Why not inference's own downloader: `RoboflowCoreModel.download_model_from_roboflow_api`
(inference 1.8.3) fetches each file whole into memory (`response.content`) and then
writes it, so a ~600 MB ViT-B-16 download is silent for minutes, peaks at the file's
size in memory, and starts over after any interruption. So the bot downloads first,
and inference then finds every file in its cache (`are_all_files_cached`) and skips
its own download.

What is still inference's: the metadata request (`get_roboflow_model_data`: its URL
under `API_BASE_URL`, query, `api_key`, headers and HTTP-error mapping), the file
naming (the last segment of each signed URL's path), the cache layout
(`get_cache_dir(model_id)`), the per-model lock file it uses for downloads (so a
bot and inference never write the same folder at once), and its URL wrapping and
request headers for the file requests.

What is ours: each file streams in 1 MiB chunks into `<name>.partial` beside its
final name (memory stays flat), resuming with an HTTP `Range` (guarded by `If-Range`
with the server's ETag, kept in `<name>.partial.json`) after a dropped connection, a
timeout or a restart; a server that ignores the range gets a clean restart. A file
is renamed into place only once its size equals the announced total and its MD5
matches Google Cloud Storage's `x-goog-hash` header (when sent), so inference never
loads a partial file. Tries are bounded (`MODEL_DOWNLOAD_TRIES` per file, waits
doubling from `MODEL_DOWNLOAD_RETRY_WAIT_S`); then one `StartupError` line says where
it stopped, and the next start resumes. 401/403/404 and a full disk are one line too.

Progress: `DownloadProgress` (thread-safe, `progress_for(model_id)`) holds bytes
done/total, rate and ETA for anyone to read (e.g. "ready in about N s"); on a
terminal a tqdm bar shows it, otherwise (Docker, logs) one line every
`MODEL_DOWNLOAD_LOG_EVERY_S` seconds.

Longer than most modules (~740 lines) on purpose: one resumable transfer whose states
(partial file, ETag sidecar, range request, verification, inference's lock and URLs)
interlock; split, each part would need the others' invariants to be read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import requests

from bot.config import Settings
from bot.errors import StartupError

log = logging.getLogger(__name__)

#: What `inference.models.Clip.get_infer_bucket_file_list` requires (checked by a test).
CLIP_FILES = ("textual.onnx", "visual.onnx")
CHUNK = 256 * 1024
MB = 1_000_000
#: The rate is measured over this many recent seconds.
RATE_WINDOW_S = 10.0
#: Fresh signed links are asked for at most this often.
REFRESH_MIN_INTERVAL_S = 60.0
#: tqdm's default bar, with "B" after the sizes ("120MB/598MB").
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}]"
#: Longest wait between two tries.
MAX_RETRY_WAIT_S = 30.0
#: Seconds to wait for a connection (the read timeout is `MODEL_DOWNLOAD_TIMEOUT_S`).
CONNECT_TIMEOUT_S = 15.0
#: Kept free beyond the files' size, so that the download does not fill the disk to the last byte.
SPACE_MARGIN = 16 * MB
#: A URL's query (signatures, api_key): never shown.
_SIGNED_QUERY = re.compile(r"\?[^\s'\")]*")


#: Set when the interpreter shuts down (Ctrl-C, SIGTERM): a download stops at its next chunk,
#: keeping its `.partial` file, instead of holding the exit until hundreds of MB have arrived
#: (the download runs in an executor thread, which the interpreter joins before exiting).
_stopping = threading.Event()
# `threading._register_atexit` hooks run before non-daemon threads are joined (atexit's run after),
# last registered first, so this one runs before concurrent.futures joins its workers.
threading._register_atexit(_stopping.set)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ progress
@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """One consistent reading of a download's progress."""

    model_id: str
    #: "idle", "downloading", "verifying", "done" or "failed".
    state: str
    done: int
    #: Bytes in all files; None until the server has said.
    total: int | None
    #: Bytes/s over the last `RATE_WINDOW_S` seconds; None until measurable.
    rate: float | None
    #: Seconds left at that rate; None when unknown.
    eta_s: float | None
    #: Bytes already on disk when this run started (resumed, not downloaded now).
    resumed: int

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


class DownloadProgress:
    """Bytes done and total, rate and ETA of one model's download; safe to read from any thread."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self._lock = threading.Lock()
        self._state = "idle"
        self._done = 0
        self._total: int | None = None
        self._resumed = 0
        self._samples: deque[tuple[float, int]] = deque()

    def begin(self, *, total: int, done: int) -> None:
        """Start counting: `done` bytes are already on disk."""
        with self._lock:
            self._state = "downloading"
            self._total, self._done, self._resumed = total, done, done
            self._samples.clear()
            self._samples.append((time.monotonic(), done))

    def advance(self, count: int) -> None:
        """`count` more bytes written (negative: bytes thrown away for a restart)."""
        with self._lock:
            self._done += count
            now = time.monotonic()
            if count < 0:
                self._samples.clear()
            self._samples.append((now, self._done))
            while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW_S:
                self._samples.popleft()

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            rate = None
            if len(self._samples) >= 2:
                (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
                if t1 - t0 >= 0.2:
                    rate = max(0.0, (d1 - d0) / (t1 - t0))
            eta = None
            if self._total is not None and rate:
                eta = max(0.0, self._total - self._done) / rate
            return ProgressSnapshot(self.model_id, self._state, self._done, self._total, rate, eta, self._resumed)


_progress: dict[str, DownloadProgress] = {}
_progress_lock = threading.Lock()


def progress_for(model_id: str) -> DownloadProgress:
    """The process-wide progress of `model_id`'s download (state "idle" if none ran)."""
    with _progress_lock:
        if model_id not in _progress:
            _progress[model_id] = DownloadProgress(model_id)
        return _progress[model_id]


def describe_eta(seconds: float | None) -> str:
    """ "about 40 s left", "about 3 min left"; "" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"about {hours} h {rest} min left"


def describe_progress(label: str, snap: ProgressSnapshot) -> str:
    """The log line: "Downloading CLIP clip/ViT-B-16: 120/598 MB (20%), 8.1 MB/s, about 1 min left"."""
    total = snap.total or 0
    parts = [f"Downloading CLIP {label}: {snap.done / MB:.0f}/{total / MB:.0f} MB ({(snap.fraction or 0) * 100:.0f}%)"]
    if snap.rate is not None:
        parts.append(f"{snap.rate / MB:.1f} MB/s")
    eta = describe_eta(snap.eta_s)
    if eta and snap.done < total:
        parts.append(eta)
    return ", ".join(parts)


class Reporter:
    """Shows a download's progress: a tqdm bar on a terminal, else a log line every few seconds."""

    def __init__(self, label: str, progress: DownloadProgress, *, stream: TextIO | None, every_s: float) -> None:
        self.label = label
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self._bar: Any = None
        self._last_log = 0.0
        self._shown = 0
        isatty = getattr(self.stream, "isatty", None)
        self.on_terminal = bool(isatty and isatty())

    def start(self) -> None:
        snap = self.progress.snapshot()
        self._shown = snap.done
        self._last_log = time.monotonic()
        if self.on_terminal:
            from tqdm import tqdm

            self._bar = tqdm(
                total=snap.total,
                initial=snap.done,
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                desc=f"CLIP {self.label}",
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
                leave=True,
                bar_format=BAR_FORMAT,
            )

    def update(self) -> None:
        snap = self.progress.snapshot()
        if self._bar is not None:
            if snap.done < self._shown:  # a restart threw bytes away
                self._bar.reset(total=snap.total)
                self._shown = 0
            self._bar.update(snap.done - self._shown)
            self._shown = snap.done
            return
        now = time.monotonic()
        if now - self._last_log >= self.every_s:
            self._last_log = now
            log.info("%s", describe_progress(self.label, snap))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ------------------------------------------------------------------ download
@dataclass
class _Target:
    name: str
    url: str
    total: int = 0

    def paths(self, folder: Path) -> tuple[Path, Path, Path]:
        final = folder / self.name
        return final, folder / f"{self.name}.partial", folder / f"{self.name}.partial.json"


class _Stopped(Exception):
    """The process is exiting."""


class _RetryableError(Exception):
    """One try failed in a way the next try may fix (dropped, timed out, 5xx, bad checksum)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _mb(count: int) -> str:
    return f"{count / MB:.0f}" if count >= 10 * MB else f"{count / MB:.1f}"


def _md5_from_goog_hash(header: str | None) -> bytes | None:
    """The MD5 in a Google Cloud Storage `x-goog-hash: crc32c=...,md5=...` header."""
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "md5":
            with contextlib.suppress(binascii.Error, ValueError):
                return base64.b64decode(value, validate=True)
    return None


def _file_md5(path: Path) -> bytes:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.digest()


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class ModelDownload:
    """Downloads a model's files into `folder`, resuming, verifying and reporting.

    `get_urls(fresh)` returns file name -> signed URL (`fresh=True`: new links,
    after storage refused an old one). `headers()` and `wrap_url` are inference's
    (its request headers and optional gateway); the defaults suit tests.
    """

    def __init__(
        self,
        *,
        label: str,
        folder: Path,
        get_urls: Callable[[bool], dict[str, str]],
        progress: DownloadProgress,
        reporter: Reporter | None = None,
        tries: int = 4,
        timeout_s: float = 60.0,
        retry_wait_s: float = 1.0,
        headers: Callable[[], dict[str, Any]] = dict,
        wrap_url: Callable[[str], str] = str,
        required: Iterable[str] = (),
    ) -> None:
        self.label = label
        self.folder = Path(folder)
        self.get_urls = get_urls
        self.progress = progress
        self.reporter = reporter
        self.tries = tries
        self.timeout_s = timeout_s
        self.retry_wait_s = retry_wait_s
        self.headers = headers
        self.wrap_url = wrap_url
        self.required = tuple(required)
        self.session = requests.Session()
        self._refreshed_at: float | None = None
        self._targets: dict[str, _Target] = {}

    # ---------------------------------------------------------------- steps
    def run(self) -> None:
        """Download every file the API lists that is not complete yet; raise `StartupError` with one line."""
        try:
            self._run()
        except _Stopped:
            snap = self.progress.snapshot()
            raise StartupError(
                f"Stopped downloading CLIP {self.label} at {_mb(snap.done)} of {_mb(snap.total or 0)} MB "
                "(the process is exiting); run again to resume."
            ) from None

    def _run(self) -> None:
        started = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        urls = self.get_urls(False)
        missing = [name for name in self.required if name not in urls]
        if missing:
            raise StartupError(
                f"Roboflow's answer for CLIP {self.label} lists no {' or '.join(missing)}; "
                "check CLIP_MODEL_ID (a CLIP model, e.g. clip/ViT-B-16)."
            )
        self._targets = {name: _Target(name, url) for name, url in urls.items()}
        todo: list[_Target] = []
        done = 0
        to_write = 0
        for target in self._targets.values():
            final, partial, _ = target.paths(self.folder)
            if final.is_file():
                target.total = final.stat().st_size
                done += target.total
                continue
            target.total = self._probe_total(target)
            have = min(partial.stat().st_size, target.total) if partial.is_file() else 0
            done += have
            to_write += target.total - have
            todo.append(target)
        if not todo:
            return
        total = sum(t.total for t in self._targets.values())
        self._check_space(to_write)
        self.progress.begin(total=total, done=done)
        if done:
            log.info(
                "Resuming the download of CLIP %s into %s at %s of %s MB",
                self.label,
                self.folder,
                _mb(done),
                _mb(total),
            )
        else:
            log.info("Downloading CLIP %s (%s MB) into %s", self.label, _mb(total), self.folder)
        if self.reporter is not None:
            self.reporter.start()
        try:
            for target in todo:
                self._fetch(target)
        except BaseException:
            self.progress.set_state("failed")
            raise
        finally:
            if self.reporter is not None:
                self.reporter.close()
            self.session.close()
        self.progress.set_state("done")
        elapsed = time.monotonic() - started
        fetched = total - done
        log.info(
            "Downloaded CLIP %s (%s MB) in %.1f s (%.1f MB/s), verified",
            self.label,
            _mb(fetched),
            elapsed,
            fetched / MB / max(elapsed, 1e-6),
        )

    def _refresh(self) -> bool:
        """New signed URLs after storage refused one (it may have expired during a long download);
        at most once a minute, so a link that stays refused fails instead of looping."""
        now = time.monotonic()
        if self._refreshed_at is not None and now - self._refreshed_at < REFRESH_MIN_INTERVAL_S:
            return False
        self._refreshed_at = now
        for name, url in self.get_urls(True).items():
            if name in self._targets:
                self._targets[name].url = url
        return True

    def _http_problem(self, target: _Target, status: int) -> StartupError:
        if status == 404:
            return StartupError(
                f"Roboflow's storage has no {target.name} for CLIP {self.label} (HTTP 404); "
                "check CLIP_MODEL_ID, or try again later."
            )
        if status in (401, 403):
            return StartupError(
                f"Roboflow's storage refused {target.name} of CLIP {self.label} (HTTP {status}) even with a fresh "
                "link; check ROBOFLOW_API_KEY and this machine's clock (signed links expire), then run again."
            )
        return StartupError(f"Downloading {target.name} of CLIP {self.label} failed (HTTP {status}); run again.")

    def _probe_total(self, target: _Target) -> int:
        """The file's size, from a one-byte range request (a signed URL is good for GET only)."""
        for attempt in range(1, self.tries + 1):
            try:
                with self._get(target, {"Range": "bytes=0-0"}) as response:
                    status = response.status_code
                    if status in (401, 403, 404, 410) and self._refresh():
                        continue
                    if status == 206:
                        total = response.headers.get("Content-Range", "").rpartition("/")[2]
                        if total.isdigit():
                            return int(total)
                    if status == 200 and response.headers.get("Content-Length", "").isdigit():
                        return int(response.headers["Content-Length"])
                    if status in (401, 403, 404, 410) or (status < 500 and status != 429):
                        raise self._http_problem(target, status)
                    what = f"HTTP {status}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                what = type(exc).__name__
            if attempt < self.tries:
                self._wait(attempt)
        raise StartupError(
            f"Downloading CLIP {self.label} failed after {self.tries} tries ({what} asking for {target.name}); "
            "check the network and run again."
        )

    def _check_space(self, needed: int) -> None:
        free = shutil.disk_usage(self.folder).free
        if free < needed + SPACE_MARGIN:
            raise StartupError(
                f"Not enough space in {self.folder} for CLIP {self.label}: {_mb(needed + SPACE_MARGIN)} MB needed, "
                f"{_mb(free)} MB free. Free some space or point MODEL_CACHE_DIR at a larger disk."
            )

    def _get(self, target: _Target, extra: dict[str, str]) -> requests.Response:
        headers = {**self.headers(), **extra}
        return self.session.get(
            self.wrap_url(target.url),
            headers=headers,
            stream=True,
            timeout=(CONNECT_TIMEOUT_S, self.timeout_s),
            allow_redirects=True,
        )

    def _wait(self, attempt: int) -> None:
        if _stopping.wait(min(MAX_RETRY_WAIT_S, self.retry_wait_s * 2 ** (attempt - 1))):
            raise _Stopped

    def _fetch(self, target: _Target) -> None:
        final, partial, meta = target.paths(self.folder)
        for attempt in range(1, self.tries + 1):
            try:
                self._try_once(target, partial, meta)
                self._verify(target, partial, meta)
            except _RetryableError as exc:
                if attempt == self.tries:
                    snap = self.progress.snapshot()
                    raise StartupError(
                        f"Downloading CLIP {self.label} failed after {self.tries} tries ({exc.what} at "
                        f"{_mb(snap.done)} of {_mb(snap.total or 0)} MB); run again to resume."
                    ) from None
                log.info("Download of %s interrupted (%s); trying again", target.name, exc.what)
                self._wait(attempt)
                continue
            except OSError as exc:
                if _is_disk_full(exc):
                    snap = self.progress.snapshot()
                    left = (snap.total or 0) - snap.done
                    raise StartupError(
                        f"The disk holding {self.folder} is full ({_mb(left)} MB of CLIP {self.label} still to "
                        "download); free some space or point MODEL_CACHE_DIR at a larger disk, then run again "
                        "to resume."
                    ) from None
                raise
            os.replace(partial, final)
            meta.unlink(missing_ok=True)
            return

    def _try_once(self, target: _Target, partial: Path, meta: Path) -> None:
        """One request; appends to `partial` from where it stops, or restarts it."""
        offset = partial.stat().st_size if partial.is_file() else 0
        if offset > target.total:
            self._discard(partial, meta, offset)
            offset = 0
        if offset == target.total and offset > 0:
            return  # complete on disk (an earlier run stopped before the rename): verify
        extra: dict[str, str] = {}
        etag = None
        if offset:
            extra["Range"] = f"bytes={offset}-"
            with contextlib.suppress(OSError, ValueError):
                etag = json.loads(meta.read_text()).get("etag")
            if etag:
                extra["If-Range"] = etag
        try:
            response = self._get(target, extra)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _RetryableError("could not connect" if offset == 0 else "connection failed") from exc
        with response:
            status = response.status_code
            if status in (401, 403, 404, 410):
                if self._refresh():
                    raise _RetryableError(f"HTTP {status}, fetched new links")
                raise self._http_problem(target, status)
            if status == 416:
                self._discard(partial, meta, offset)
                raise _RetryableError("the server refused the resume point (HTTP 416)")
            if status >= 500 or status == 429:
                raise _RetryableError(f"HTTP {status}")
            if status not in (200, 206):
                raise self._http_problem(target, status)
            mode = "ab"
            if status == 206:
                start, _, total = response.headers.get("Content-Range", "").removeprefix("bytes ").partition("/")
                if not start.startswith(f"{offset}-") or total != str(target.total):
                    self._discard(partial, meta, offset)
                    raise _RetryableError("the server answered another range")
            else:
                if offset:
                    log.info("The server sent %s whole instead of resuming; starting it over", target.name)
                    self._discard(partial, meta, offset)
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) != target.total:
                    target.total = int(length)  # the file changed since the probe
                mode = "wb"
            meta.write_text(
                json.dumps(
                    {
                        "etag": response.headers.get("ETag"),
                        "total": target.total,
                        "x-goog-hash": response.headers.get("x-goog-hash"),
                    }
                )
            )
            try:
                with partial.open(mode) as handle:
                    for chunk in response.iter_content(CHUNK):
                        if _stopping.is_set():
                            raise _Stopped
                        handle.write(chunk)
                        self.progress.advance(len(chunk))
                        if self.reporter is not None:
                            self.reporter.update()
                    handle.flush()
                    os.fsync(handle.fileno())
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                timed_out = isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower()
                raise _RetryableError("timed out" if timed_out else "connection dropped") from exc
        size = partial.stat().st_size
        if size != target.total:
            raise _RetryableError(f"connection dropped ({size} of {target.total} bytes of {target.name})")

    def _verify(self, target: _Target, partial: Path, meta: Path) -> None:
        """Size equals the total; MD5 equals storage's `x-goog-hash` when it sent one."""
        self.progress.set_state("verifying")
        size = partial.stat().st_size
        if size != target.total:
            raise _RetryableError(f"{target.name} is {size} bytes, expected {target.total}")
        expected = None
        with contextlib.suppress(OSError, ValueError):
            expected = _md5_from_goog_hash(json.loads(meta.read_text()).get("x-goog-hash"))
        if expected is not None and _file_md5(partial) != expected:
            self._discard(partial, meta, size)
            raise _RetryableError(f"{target.name} failed its MD5 check")
        self.progress.set_state("downloading")

    def _discard(self, partial: Path, meta: Path, size: int) -> None:
        """Throw a partial file away (it cannot be resumed)."""
        partial.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        if size:
            self.progress.advance(-size)


# ------------------------------------------------------------- entry point
def ensure_model_downloaded(settings: Settings, model_id: str, *, stream: TextIO | None = None) -> None:
    """Put `model_id`'s files into inference's cache unless they are all there already.

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
        )
        try:
            download.run()
        except StartupError:
            raise
        except Exception as exc:  # unforeseen: still one line, without a signed URL's query
            detail = _SIGNED_QUERY.sub("?...", str(exc).strip().splitlines()[0] if str(exc).strip() else "")
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
                raise StartupError(
                    f"Roboflow refused CLIP model {label} (HTTP {status}); check ROBOFLOW_API_KEY "
                    "(a wrong or revoked key is refused; CLIP needs none) and CLIP_MODEL_ID."
                ) from None
            except RoboflowAPINotNotFoundError:
                raise StartupError(
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
