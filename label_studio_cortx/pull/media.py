"""The images of a pulled snapshot: bounded concurrent, resumable, verified downloads and the media manifest.

Owns ``<snapshot folder>/media.json`` (what was fetched from where, with size, ETag, SHA-256 and pixel size) and
the transfer of each object: streamed to ``<file>.part`` next to its target, with ``<file>.part.json`` holding the
ETag the bytes so far belong to, so an interrupted pull (Ctrl-C, a killed job, a dropped connection) resumes with a
Range request pinned to that ETag (If-Match) and an object replaced in between starts over instead of being
stitched together. Each object is verified (size, MD5 against a single-part ETag, a readable image of the size
the annotations give) before it is moved into place; a file already recorded as verified in ``media.json`` whose
SHA-256 still matches is not fetched again. Failures are collected per object, never raised half-way: the caller
reports every missing or unreadable object by key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from .errors import STREAM_ERRORS, SnapshotError, endpoint_of, error_code, is_not_found, s3_error
from .imageinfo import NotAnImage, image_size
from .manifest import sha256_file
from .sources import Source

logger = logging.getLogger(__name__)

MEDIA_MANIFEST_NAME = "media.json"
MEDIA_MANIFEST_VERSION = 1
CHUNK_SIZE = 1024 * 1024
#: Dropped connections resumed per object before it is reported as unreadable.
MAX_RESUMES = 3
#: Default number of objects downloaded at once.
DEFAULT_WORKERS = 8
_PLAIN_ETAG = re.compile(r"^[0-9a-f]{32}$")  # a single-part upload's ETag is the MD5 of its content

OK, MISSING, UNREADABLE = "ok", "missing", "unreadable"


@dataclass
class MediaObject:
    """One image of the snapshot: where it came from, where it is, and how it was verified (or why it failed)."""

    uri: str
    path: str  # relative to the snapshot folder, POSIX
    status: str = OK
    size: int | None = None
    etag: str | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    refs: list[str] = field(default_factory=list)  # how the annotation files named it (before the rewrite)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaObject:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class MediaManifest:
    """Content of ``media.json``: the objects, the layout written and the split (see :mod:`.dataset`)."""

    snapshot: str
    format: str
    layout: str = "native"
    objects: list[MediaObject] = field(default_factory=list)
    split: dict[str, Any] | None = None
    media_version: int = MEDIA_MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, folder: Path) -> MediaManifest | None:
        path = folder / MEDIA_MANIFEST_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("media_version", 0) > MEDIA_MANIFEST_VERSION:
                raise ValueError(f"media_version {data['media_version']} is newer than this label-studio-cortx")
            objects = [MediaObject.from_dict(o) for o in data.get("objects", [])]
            return cls(data["snapshot"], data["format"], data.get("layout", "native"), objects, data.get("split"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"{path} is not a valid media manifest: {exc}") from exc

    def write(self, folder: Path) -> None:
        # Through a temporary file: an interrupted write must not destroy the record of what is verified.
        path = folder / MEDIA_MANIFEST_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)


@dataclass(frozen=True)
class MediaRequest:
    """An object to fetch into ``path`` (relative to the folder); ``expect`` is (width, height) if known."""

    source: Source
    path: str
    expect: tuple[int, int] | None = None


@dataclass
class TransferStats:
    downloaded: int = 0  # files fetched this run
    skipped: int = 0  # files already present and verified
    resumed: int = 0  # files continued from a partial download
    bytes: int = 0  # bytes received this run
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class _Cancelled(Exception):
    pass


class _Corrupt(Exception):
    pass


class _Missing(SnapshotError):
    """The object does not exist (deleted after the snapshot, or never uploaded)."""


def _verified_copy(target: Path, request: MediaRequest, previous: MediaObject | None) -> bool:
    """True if ``target`` is the file ``previous`` recorded as verified for the same object."""
    if previous is None or previous.status != OK or previous.uri != request.source.uri or previous.sha256 is None:
        return False
    try:
        if target.stat().st_size != previous.size:
            return False
        return sha256_file(target) == previous.sha256
    except OSError:
        return False


def _read_pin(meta: Path, uri: str) -> str | None:
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("etag") if isinstance(data, dict) and data.get("uri") == uri else None


def _hash_existing(part: Path) -> tuple[Any, Any, int]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    with open(part, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha, md5, size


class Fetcher:
    """Downloads a batch of :class:`MediaRequest` into ``folder`` with at most ``workers`` at once."""

    def __init__(
        self,
        folder: Path,
        client_for: Callable[[str], Any],
        workers: int = DEFAULT_WORKERS,
        progress: bool = True,
    ) -> None:
        if workers < 1:
            raise SnapshotError(f"the download pool needs at least one worker, got {workers}")
        self.folder, self.client_for, self.workers, self.progress = folder, client_for, workers, progress
        self.stats = TransferStats()
        self.finished: dict[str, MediaObject] = {}  # path -> outcome, as each object completes (for a partial record)
        self._stop = threading.Event()
        self._bytes_bar: tqdm | None = None

    def fetch_all(self, requests: list[MediaRequest], previous: dict[str, MediaObject]) -> list[MediaObject]:
        """Fetch (or keep) every requested object; returns one :class:`MediaObject` per request, in order."""
        results: list[MediaObject | None] = [None] * len(requests)
        disable = None if self.progress else True
        with (
            tqdm(
                total=0, unit="B", unit_scale=True, unit_divisor=1024, desc="media", disable=disable, position=0
            ) as self._bytes_bar,
            tqdm(total=len(requests), unit="file", desc="files", disable=disable, position=1) as files_bar,
        ):
            pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="media")
            try:
                futures = {
                    pool.submit(self._fetch_one, request, previous.get(request.path)): i
                    for i, request in enumerate(requests)
                }
                for future in as_completed(futures):
                    result = results[futures[future]] = future.result()
                    self.finished[result.path] = result
                    files_bar.update(1)
            except BaseException:
                # Ctrl-C or a bug: stop the running transfers between two chunks; their .part files stay for resume.
                self._stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        return [r for r in results if r is not None]

    # --- one object --------------------------------------------------------------------------------------------------
    def _fetch_one(self, request: MediaRequest, previous: MediaObject | None) -> MediaObject:
        target = self.folder.joinpath(*request.path.split("/"))
        if _verified_copy(target, request, previous):
            self.stats.add(skipped=1)
            return previous  # type: ignore[return-value]
        record = MediaObject(uri=request.source.uri, path=request.path)
        client = self.client_for(request.source.bucket)
        part = target.with_name(target.name + ".part")
        meta = target.with_name(target.name + ".part.json")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._download(client, request, target, record)
            except _Corrupt:
                # Damaged in transit (size or MD5 differs from what the store announced): one clean retry.
                part.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                self._download(client, request, target, record)
            self._check_image(part, request, record)
            os.replace(part, target)
            meta.unlink(missing_ok=True)
            self.stats.add(downloaded=1)
            return record
        except _Cancelled:
            raise KeyboardInterrupt from None
        except (_Corrupt, NotAnImage) as exc:
            # Bytes that can never become the image are not kept for a resume.
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            record.status, record.error = UNREADABLE, str(exc)
        except _Missing as exc:  # a partial copy of a deleted object is of no use any more
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            record.status, record.error = MISSING, str(exc)
        except SnapshotError as exc:  # access denied, connection lost for good ...: a partial file stays resumable
            message = str(exc)  # always naming the object: connection errors name only the endpoint
            record.status = UNREADABLE
            record.error = message if request.source.uri in message else f"{request.source.uri}: {message}"
        except OSError as exc:
            record.status, record.error = UNREADABLE, f"{request.source.uri}: cannot write {target}: {exc}"
        return record

    def _download(self, client: Any, request: MediaRequest, target: Path, record: MediaObject) -> None:
        bucket, key = request.source.bucket, request.source.key
        part = target.with_name(target.name + ".part")
        meta = target.with_name(target.name + ".part.json")
        pin = _read_pin(meta, request.source.uri) if part.exists() else None
        if pin:
            sha, md5, written = _hash_existing(part)
        else:
            part.unlink(missing_ok=True)
            sha, md5, written = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        resumed = bool(pin and written)
        total: int | None = None
        encrypted = False
        attempts = 0
        with open(part, "ab") as out:
            while True:
                kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
                if written:
                    kwargs["Range"] = f"bytes={written}-"
                if pin:
                    kwargs["IfMatch"] = pin
                try:
                    response = client.get_object(**kwargs)
                    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                    if written and status != 206:  # the server ignored the Range: start over
                        out.truncate(0)
                        sha, md5, written, resumed = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0, False
                    pin = pin or response.get("ETag")
                    # With SSE-KMS or SSE-C the ETag is not the MD5 of the content: size and image checks only.
                    encrypted = response.get("ServerSideEncryption") == "aws:kms" or "SSECustomerAlgorithm" in response
                    meta.write_text(json.dumps({"uri": request.source.uri, "etag": pin}), encoding="utf-8")
                    total = written + int(response.get("ContentLength") or 0)
                    if self._bytes_bar is not None:
                        with self.stats._lock:
                            self._bytes_bar.total += total - written
                            self._bytes_bar.refresh()
                    body = response["Body"]
                    try:
                        for chunk in body.iter_chunks(CHUNK_SIZE):
                            if self._stop.is_set():
                                raise _Cancelled()
                            out.write(chunk)
                            sha.update(chunk)
                            md5.update(chunk)
                            written += len(chunk)
                            self.stats.add(bytes=len(chunk))
                            if self._bytes_bar is not None:
                                self._bytes_bar.update(len(chunk))
                    finally:
                        body.close()
                    out.flush()
                    break
                except STREAM_ERRORS as exc:
                    attempts += 1
                    out.flush()
                    if attempts > MAX_RESUMES:
                        raise s3_error(exc, client, bucket, key=key) from exc
                    resumed = True
                    logger.warning("download of s3://%s/%s interrupted (%s), resuming", bucket, key, exc)
                except ClientError as exc:
                    code = error_code(exc)[0]
                    if is_not_found(exc):
                        raise _Missing(f"s3://{bucket}/{key} does not exist") from exc
                    if code == "NoSuchBucket":  # most likely a source bucket on another S3 server
                        raise SnapshotError(
                            f"s3://{bucket}/{key}: bucket {bucket!r} does not exist at {endpoint_of(client)}; if it "
                            f"lives on another S3 server, pass --media-endpoint {bucket}=URL "
                            f"(Python: clients={{{bucket!r}: make_client(URL, ...)}})"
                        ) from exc
                    if code in ("PreconditionFailed", "412", "InvalidRange", "416") and written:
                        # Replaced since the partial download (or nothing left to read): fetch it whole.
                        out.truncate(0)
                        sha, md5, written, pin, resumed = (
                            hashlib.sha256(),
                            hashlib.md5(usedforsecurity=False),
                            0,
                            None,
                            False,
                        )
                        attempts += 1
                        if attempts > MAX_RESUMES:
                            raise s3_error(exc, client, bucket, key=key) from exc
                        continue
                    raise s3_error(exc, client, bucket, key=key) from exc
                except BotoCoreError as exc:
                    raise s3_error(exc, client, bucket, key=key) from exc
        etag = (pin or "").strip('"')
        if total is not None and written != total:
            raise _Corrupt(f"s3://{bucket}/{key}: received {written} bytes, expected {total}")
        if _PLAIN_ETAG.match(etag) and not encrypted and md5.hexdigest() != etag:
            raise _Corrupt(f"s3://{bucket}/{key}: content MD5 {md5.hexdigest()} does not match its ETag {etag}")
        record.size, record.etag, record.sha256 = written, etag or None, sha.hexdigest()
        if resumed:
            self.stats.add(resumed=1)

    @staticmethod
    def _check_image(part: Path, request: MediaRequest, record: MediaObject) -> None:
        try:
            _, width, height = image_size(part)
        except NotAnImage as exc:
            raise NotAnImage(f"{request.source.uri} is not a readable image: {exc}") from None
        if request.expect and (width, height) != tuple(request.expect):
            raise NotAnImage(
                f"{request.source.uri} is {width}x{height} pixels but the annotations were made on a "
                f"{request.expect[0]}x{request.expect[1]} image: it was replaced or is damaged"
            )
        record.width, record.height = width, height
