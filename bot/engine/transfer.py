"""One resumable, verified transfer of a model's files into a folder (`ModelDownload`).

Each file streams in `CHUNK`-sized pieces into `<name>.partial` beside its final name
(memory stays flat), resuming with an HTTP `Range` (guarded by `If-Range` with the
server's ETag, kept in `<name>.partial.json`) after a dropped connection, a timeout or
a restart; a server that ignores the range gets a clean restart. A file is renamed into
place only once its size equals the announced total and its MD5 matches Google Cloud
Storage's `x-goog-hash` header (when sent), so nothing ever loads a partial file. Tries
are bounded (waits doubling from `retry_wait_s`); then one `StartupError` line says
where it stopped, and the next run resumes. 401/403/404 and a full disk are one line too.

The states (partial file, ETag sidecar, range request, verification) interlock, so
they stay together here; where the URLs come from is the caller's (`model_download`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bot.engine.download_progress import MB, DownloadProgress, Reporter
from bot.errors import StartupError

log = logging.getLogger(__name__)

#: Small enough that a stop request is seen within a fraction of a second; large enough
#: that the per-chunk work (hashing, progress) stays negligible.
CHUNK = 256 * 1024
#: Fresh signed links are asked for at most this often.
REFRESH_MIN_INTERVAL_S = 60.0
#: Longest wait between two tries.
MAX_RETRY_WAIT_S = 30.0
#: Seconds to wait for a connection (the read timeout is `MODEL_DOWNLOAD_TIMEOUT_S`).
CONNECT_TIMEOUT_S = 15.0
#: Kept free beyond the files' size, so that the download does not fill the disk to the last byte.
SPACE_MARGIN = 16 * MB
#: A URL's query (signatures, api_key): never shown.
SIGNED_QUERY = re.compile(r"\?[^\s'\")]*")


@dataclass
class _Target:
    name: str
    url: str
    total: int = 0

    def paths(self, folder: Path) -> tuple[Path, Path, Path]:
        final = folder / self.name
        return final, folder / f"{self.name}.partial", folder / f"{self.name}.partial.json"


class _Stopped(Exception):
    """The owner asked the transfer to stop (the process is exiting)."""


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
        stop: threading.Event | None = None,
    ) -> None:
        """`stop`: set by the owner (on shutdown); the transfer then stops at its next chunk or
        wait, keeping its `.partial` files, instead of holding the exit until all has arrived."""
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
        self.stop = stop if stop is not None else threading.Event()
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
        if self.stop.wait(min(MAX_RETRY_WAIT_S, self.retry_wait_s * 2 ** (attempt - 1))):
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
                        if self.stop.is_set():
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
