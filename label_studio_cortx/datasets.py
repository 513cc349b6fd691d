"""Pull annotation snapshots from a CORTX (or other S3-compatible) bucket and load them as plain Python data.

This is the *training side* of CORTX target storages: a Label Studio server writes snapshots of a project's
annotations (converted to JSON, JSON_MIN, CSV, TSV, COCO, VOC, YOLO ...) under ``<prefix>/snapshots/``; a
training job pulls one with :func:`pull` (or ``label-studio-cortx pull``) and reads it with :func:`load`.

Only the standard library, boto3/botocore, tqdm and :mod:`label_studio_cortx.manifest` are imported here, so
this module works where neither Django nor Label Studio is installed.

Example::

    from label_studio_cortx.datasets import make_client, pull, load

    client = make_client("https://cortx.example.com", access_key="...", secret_key="...")
    folder = pull(client, "annotations", "projects/cats", "/data/snapshots")
    coco = load(folder)          # {"images": [...], "annotations": [...], "categories": [...]}
"""

from __future__ import annotations

import argparse
import atexit
import csv
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import uuid
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from tqdm import tqdm

from label_studio_cortx.botocore_config import cortx_config
from label_studio_cortx.manifest import (
    MANIFEST_NAME,
    ManifestFile,
    SnapshotManifest,
    is_snapshot_id,
    latest_key,
    manifest_key,
    normalize_prefix,
    snapshots_root,
)

__all__ = [
    "ChecksumMismatch",
    "SnapshotError",
    "build_pull_parser",
    "list_snapshots",
    "load",
    "load_coco",
    "load_csv",
    "load_json",
    "load_voc",
    "load_yolo",
    "main_pull",
    "make_client",
    "pull",
    "read_manifest",
]

logger = logging.getLogger(__name__)

#: Bytes read per chunk when streaming objects and archives.
CHUNK_SIZE = 1024 * 1024
#: Largest manifest accepted (a manifest lists a handful of files; anything bigger is not a manifest).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: How often an interrupted download is resumed (HTTP Range request) before giving up.
MAX_RESUMES = 3

_LATEST = "latest"


# ====================================================================================================================
# Errors
# ====================================================================================================================


class SnapshotError(Exception):
    """A snapshot cannot be listed, read, downloaded, verified, unpacked or loaded. The message is user-facing."""


class ChecksumMismatch(SnapshotError):
    """A downloaded object does not match the size / SHA-256 recorded in the snapshot manifest."""

    def __init__(
        self,
        bucket: str,
        key: str,
        expected_sha256: str,
        actual_sha256: str,
        expected_size: int,
        actual_size: int,
        endpoint: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        self.expected_size = expected_size
        self.actual_size = actual_size
        at = f" at {endpoint}" if endpoint else ""
        super().__init__(
            f"checksum mismatch for s3://{bucket}/{key}{at}: expected sha256 {expected_sha256} "
            f"({expected_size} bytes), got sha256 {actual_sha256} ({actual_size} bytes). "
            "The object is corrupt or was overwritten after the snapshot was written; "
            "re-run the snapshot and pull again."
        )


# ====================================================================================================================
# Client
# ====================================================================================================================

_PEM_FILES: dict[str, str] = {}


def _remove_pem_files() -> None:
    for path in _PEM_FILES.values():
        try:
            os.unlink(path)
        except OSError:
            pass
    _PEM_FILES.clear()


atexit.register(_remove_pem_files)


def _ca_bundle_path(ca_bundle: str | os.PathLike[str]) -> str:
    """A CA bundle given as PEM text is written to a private temp file (removed at exit); a path is checked."""
    text = os.fspath(ca_bundle)
    if "-----BEGIN" in text:
        path = _PEM_FILES.get(text)
        if path is None or not os.path.exists(path):
            fd, path = tempfile.mkstemp(prefix="label-studio-cortx-ca-", suffix=".pem")
            with os.fdopen(fd, "w", encoding="ascii", errors="replace") as f:
                f.write(text if text.endswith("\n") else text + "\n")
            _PEM_FILES[text] = path
        return path
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        raise SnapshotError(f"CA bundle {path!r} does not exist (expected the path of a PEM file, or PEM text)")
    return path


def make_client(
    endpoint_url: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    region: str = "us-east-1",
    ca_bundle: str | os.PathLike[str] | None = None,
    verify: bool = True,
    path_style: bool = True,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    max_attempts: int = 5,
) -> Any:
    """Create a boto3 S3 client suited to CORTX and other S3-compatible stores.

    :param endpoint_url: ``http(s)://host[:port]`` of the S3 endpoint (``None``: AWS / ``AWS_ENDPOINT_URL``)
    :param access_key: access key id; with ``secret_key`` ``None`` too, boto3's usual chain is used
        (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, profiles ...)
    :param secret_key: secret access key
    :param session_token: optional session token (temporary credentials)
    :param region: signing region; S3-compatible stores usually accept ``us-east-1``
    :param ca_bundle: CA certificate(s) to trust, as a PEM file path or as PEM text
    :param verify: ``False`` disables TLS certificate verification (insecure; testing only)
    :param path_style: path-style addressing (``endpoint/bucket/key``), what CORTX expects; ``False`` uses
        virtual-host style (``bucket.endpoint/key``)
    :param connect_timeout: seconds to wait for a connection
    :param read_timeout: seconds to wait for data on an open connection
    :param max_attempts: total attempts per request (standard retry mode)

    The client signs with SigV4 and computes / validates the new flexible checksums only when an operation
    requires them: CORTX rejects the ``x-amz-checksum-*`` headers that boto3 >= 1.36 sends by default.
    """
    if endpoint_url is not None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = endpoint_url.split("@")[-1]  # never echo user:password@ if someone put it in the URL
            raise SnapshotError(f"invalid endpoint URL {shown!r}: expected http://host[:port] or https://host[:port]")
    if (access_key is None) != (secret_key is None):
        missing = "secret key" if secret_key is None else "access key"
        raise SnapshotError(
            f"incomplete credentials: the {missing} is missing "
            "(pass both --access-key and --secret-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )

    verify_arg: bool | str | None
    if not verify:
        verify_arg = False
    elif ca_bundle:
        verify_arg = _ca_bundle_path(ca_bundle)
    else:
        verify_arg = None  # botocore default: certifi, or AWS_CA_BUNDLE

    config = cortx_config(
        path_style=path_style, connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region or "us-east-1",
        verify=verify_arg,
        config=config,
    )


def _endpoint(client: Any) -> str:
    return str(getattr(client.meta, "endpoint_url", "") or "the default AWS endpoint")


def _error_code(exc: ClientError) -> tuple[str, int | None, str]:
    error = exc.response.get("Error", {}) or {}
    status = (exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
    code = str(error.get("Code") or status or "Unknown")
    return code, status, str(error.get("Message") or "")


_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_AUTH_HINTS = {
    "InvalidAccessKeyId": "the access key id is not known to this endpoint",
    "SignatureDoesNotMatch": "the secret key is wrong (or the region / addressing style does not match the endpoint)",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is invalid",
    "TokenRefreshRequired": "the session token has expired",
    "RequestTimeTooSkewed": "the clock of this machine differs too much from the endpoint's clock",
    "AccessDenied": "the credentials are not allowed to read this bucket/prefix (check the bucket policy)",
    "AllAccessDisabled": "all access to this bucket has been disabled",
    "AccountProblem": "the account has a problem",
    "403": "the credentials are not allowed to read this bucket/prefix (check the bucket policy)",
    "Forbidden": "the credentials are not allowed to read this bucket/prefix (check the bucket policy)",
}


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _error_code(exc)[0] in _NOT_FOUND_CODES


def _s3_error(
    exc: BaseException, client: Any, bucket: str, key: str | None = None, prefix: str | None = None
) -> SnapshotError:
    """Translate a boto3/botocore exception into a :class:`SnapshotError` naming bucket/prefix/endpoint.

    Messages are built from our own text plus the S3 error code/message; credentials never appear in them.
    """
    endpoint = _endpoint(client)
    if key:
        where = f"s3://{bucket}/{key}"
    elif prefix is not None:
        where = f"s3://{bucket}/{normalize_prefix(prefix)}"
    else:
        where = f"bucket {bucket!r}"
    if isinstance(exc, ClientError):
        code, status, message = _error_code(exc)
        if code == "NoSuchBucket":
            return SnapshotError(f"bucket {bucket!r} does not exist at {endpoint} (check --bucket and --endpoint)")
        if code in _AUTH_HINTS:
            return SnapshotError(f"access denied ({code}) to {where} at {endpoint}: {_AUTH_HINTS[code]}")
        if code in _NOT_FOUND_CODES:
            return SnapshotError(f"{where} does not exist at {endpoint}")
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return SnapshotError(
                f"{where} at {endpoint} is answered with {code}: the bucket lives in another region or needs "
                "another addressing style; try --region or --virtual-host-style"
            )
        detail = f": {message}" if message else ""
        return SnapshotError(f"S3 error {code} (HTTP {status}) for {where} at {endpoint}{detail}")
    if isinstance(exc, SSLError):
        reason = str(exc.kwargs.get("error", "")) if hasattr(exc, "kwargs") else ""
        reason = f" ({reason})" if reason else ""
        return SnapshotError(
            f"TLS connection to {endpoint} failed, its certificate is not trusted{reason}: pass --ca-bundle "
            "(ca_bundle=) with the CA certificate that signed the endpoint's certificate, or --no-verify-tls "
            f"(verify=False) to skip verification (insecure); while reading {where}"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return SnapshotError(f"cannot connect to endpoint {endpoint} (check --endpoint and the network): {exc}")
    if isinstance(exc, ReadTimeoutError):
        return SnapshotError(f"endpoint {endpoint} timed out while reading {where}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SnapshotError(
            f"no usable S3 credentials for {endpoint}: pass --access-key and --secret-key "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return SnapshotError(f"S3 request for {where} at {endpoint} failed: {exc}")


_STREAM_ERRORS = (
    ReadTimeoutError,
    ResponseStreamingError,
    IncompleteReadError,
    ConnectionClosedError,
    EndpointConnectionError,
)


# ====================================================================================================================
# Listing and manifests
# ====================================================================================================================


def list_snapshots(client: Any, bucket: str, prefix: str | None) -> list[str]:
    """Ids of the complete snapshots (those with a manifest) under ``prefix``, oldest first, newest last."""
    root = snapshots_root(prefix)
    found: set[str] = set()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
            for obj in page.get("Contents", []) or []:
                ts, sep, name = obj["Key"][len(root) :].partition("/")
                if sep and name == MANIFEST_NAME and is_snapshot_id(ts):
                    found.add(ts)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, client, bucket, prefix=root) from exc
    return sorted(found)


def _manifest_location(prefix: str | None, snapshot: str | None) -> tuple[str, str | None]:
    if snapshot in (None, "", _LATEST):
        return latest_key(prefix), None
    if not is_snapshot_id(snapshot):
        raise SnapshotError(
            f"invalid snapshot {snapshot!r}: use 'latest' or a snapshot id like 20261127T203015Z (see --list)"
        )
    return manifest_key(prefix, snapshot), snapshot


def read_manifest(client: Any, bucket: str, prefix: str | None, snapshot: str = _LATEST) -> SnapshotManifest:
    """Read and validate the manifest of ``snapshot`` (``"latest"`` or an id from :func:`list_snapshots`)."""
    key, ts = _manifest_location(prefix, snapshot)
    endpoint = _endpoint(client)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            raw = body.read(MAX_MANIFEST_BYTES + 1)
        finally:
            body.close()
    except ClientError as exc:
        if _is_not_found(exc):
            if ts is None:
                raise SnapshotError(
                    f"no snapshot found: s3://{bucket}/{key} does not exist at {endpoint}. Check --prefix "
                    f"(the storage prefix, here {normalize_prefix(prefix)!r}) and that a snapshot has been written"
                ) from exc
            raise SnapshotError(
                f"snapshot {ts} not found: s3://{bucket}/{key} does not exist at {endpoint} "
                "(run with --list to see the available snapshots)"
            ) from exc
        raise _s3_error(exc, client, bucket, key=key) from exc
    except BotoCoreError as exc:
        raise _s3_error(exc, client, bucket, key=key) from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise SnapshotError(
            f"s3://{bucket}/{key} at {endpoint} is larger than {MAX_MANIFEST_BYTES} bytes: not a manifest"
        )
    try:
        manifest = SnapshotManifest.from_json(raw)
    except ValueError as exc:
        raise SnapshotError(f"invalid snapshot manifest s3://{bucket}/{key} at {endpoint}: {exc}") from exc
    if ts is not None and manifest.snapshot != ts:
        raise SnapshotError(
            f"manifest s3://{bucket}/{key} at {endpoint} describes snapshot {manifest.snapshot}, not {ts}"
        )
    return manifest


# ====================================================================================================================
# Pull
# ====================================================================================================================


def _download_file(client: Any, bucket: str, entry: ManifestFile, target: Path, bar: tqdm, snapshot: str) -> None:
    """Stream one object to ``target`` through ``target.part``, verifying size and SHA-256.

    An interrupted stream is resumed with a Range request pinned to the object's ETag (If-Match), so an object
    overwritten mid-download is detected instead of being silently stitched together.
    """
    endpoint = _endpoint(client)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    etag: str | None = None
    resumes = 0
    done = False
    try:
        with open(part, "wb") as out:
            while True:
                kwargs: dict[str, Any] = {"Bucket": bucket, "Key": entry.key}
                if written:
                    kwargs["Range"] = f"bytes={written}-"
                if etag:
                    kwargs["IfMatch"] = etag
                try:
                    response = client.get_object(**kwargs)
                    etag = etag or response.get("ETag")
                    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                    if written and status == 200:  # Range ignored by the server: start over
                        out.seek(0)
                        out.truncate()
                        bar.update(-written)
                        digest, written = hashlib.sha256(), 0
                    body = response["Body"]
                    try:
                        for chunk in body.iter_chunks(CHUNK_SIZE):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            bar.update(len(chunk))
                    finally:
                        body.close()
                    break
                except _STREAM_ERRORS as exc:
                    resumes += 1
                    if resumes > MAX_RESUMES:
                        raise _s3_error(exc, client, bucket, key=entry.key) from exc
                    logger.warning("download of s3://%s/%s interrupted (%s), resuming", bucket, entry.key, exc)
                except ClientError as exc:
                    code = _error_code(exc)[0]
                    if _is_not_found(exc):
                        raise SnapshotError(
                            f"snapshot file s3://{bucket}/{entry.key} listed in the manifest of snapshot "
                            f"{snapshot} does not exist at {endpoint}: the snapshot was deleted or is "
                            "incomplete; re-run the snapshot"
                        ) from exc
                    if code in ("PreconditionFailed", "412"):
                        raise SnapshotError(
                            f"s3://{bucket}/{entry.key} at {endpoint} was overwritten during the download; "
                            "pull again (and re-run the snapshot if this persists)"
                        ) from exc
                    if code in ("InvalidRange", "416") and written:
                        break  # everything was already received; verification below decides
                    raise _s3_error(exc, client, bucket, key=entry.key) from exc
                except BotoCoreError as exc:
                    raise _s3_error(exc, client, bucket, key=entry.key) from exc
        actual = digest.hexdigest()
        if written != entry.size or actual != entry.sha256:
            raise ChecksumMismatch(bucket, entry.key, entry.sha256, actual, entry.size, written, endpoint)
        os.replace(part, target)
        done = True
    finally:
        if not done:
            try:
                part.unlink()
            except OSError:
                pass


def _safe_extract(archive: Path, dest: Path, where: str) -> int:
    """Unpack a zip archive into ``dest``, refusing entries that would land outside it or overwrite a file.

    All entries are checked before anything is written. Returns the number of files extracted.
    """
    root = dest.resolve()
    count = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            planned: list[tuple[zipfile.ZipInfo, Path]] = []
            for info in zf.infolist():
                name = info.filename.replace("\\", "/")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts or "\x00" in name:
                    raise SnapshotError(
                        f"archive {where} contains the unsafe path {info.filename!r} (absolute or with '..'): "
                        f"refusing to unpack it into {dest}"
                    )
                if not parts:
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise SnapshotError(f"archive {where} contains the symbolic link {info.filename!r}: refusing it")
                if len(parts) == 1 and parts[0] == MANIFEST_NAME:
                    raise SnapshotError(
                        f"archive {where} contains a top-level {MANIFEST_NAME!r}, which would clash with the "
                        "snapshot manifest"
                    )
                target = root.joinpath(*parts)
                if not target.resolve().is_relative_to(root):
                    raise SnapshotError(f"archive {where} entry {info.filename!r} resolves outside {dest}")
                planned.append((info, target))
            for info, target in planned:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "xb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK_SIZE)
                except FileExistsError:
                    raise SnapshotError(
                        f"archive {where} entry {info.filename!r} would overwrite an existing file in {dest}"
                    ) from None
                count += 1
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as exc:
        raise SnapshotError(f"archive {where} cannot be unpacked: {exc}") from exc
    except OSError as exc:
        raise SnapshotError(f"unpacking archive {where} into {dest} failed: {exc}") from exc
    return count


def _read_local_manifest(folder: Path) -> SnapshotManifest | None:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return SnapshotManifest.from_json(path.read_bytes())
    except ValueError as exc:
        raise SnapshotError(f"{path} is not a valid snapshot manifest: {exc}") from exc


def pull(
    client: Any,
    bucket: str,
    prefix: str | None,
    dest: str | os.PathLike[str],
    snapshot: str = _LATEST,
    progress: bool = True,
    keep_archives: bool = False,
    force: bool = False,
) -> Path:
    """Download a snapshot into ``dest/<snapshot id>/`` and return that folder.

    Every file of the manifest is streamed (one tqdm bar over the total bytes; hidden when ``progress`` is
    False or stderr is not a terminal) and its size and SHA-256 are verified: a mismatch raises
    :class:`ChecksumMismatch`. Zip archives are then unpacked into the folder (entries escaping it are
    rejected) and removed unless ``keep_archives``. A copy of the manifest is written as ``manifest.json`` so
    :func:`load` can find the format.

    Files are assembled in a hidden staging folder next to the result and moved into place at the end, so
    ``dest/<id>/`` only ever holds a complete, verified snapshot. If it already holds this very snapshot it is
    returned as is; if it holds something else, :class:`SnapshotError` is raised unless ``force`` (replace it).

    :raises SnapshotError: missing bucket or manifest, access denied, untrusted TLS, corrupt data ...
    """
    manifest = read_manifest(client, bucket, prefix, snapshot)
    dest_dir = Path(dest).expanduser().absolute()
    folder = dest_dir / manifest.snapshot

    if folder.exists() and not force:
        try:
            existing = _read_local_manifest(folder) if folder.is_dir() else None
        except SnapshotError:
            existing = None
        if existing is not None and existing.to_dict() == manifest.to_dict():
            logger.info("snapshot %s is already in %s", manifest.snapshot, folder)
            return folder
        raise SnapshotError(
            f"{folder} already exists and does not hold snapshot {manifest.snapshot} of s3://{bucket}/"
            f"{normalize_prefix(prefix)}; remove it or pass --force (force=True) to replace it"
        )

    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        staging = dest_dir / f".{manifest.snapshot}.partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as exc:
        raise SnapshotError(f"cannot create the destination folder {dest_dir}: {exc}") from exc

    try:
        with tqdm(
            total=manifest.total_size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"snapshot {manifest.snapshot}",
            disable=None if progress else True,
            file=sys.stderr,
        ) as bar:
            for entry in manifest.files:
                target = staging.joinpath(*entry.name.split("/"))
                _download_file(client, bucket, entry, target, bar, manifest.snapshot)
        for entry in manifest.archives:
            archive = staging.joinpath(*entry.name.split("/"))
            count = _safe_extract(archive, staging, f"s3://{bucket}/{entry.key}")
            logger.info("unpacked %d files from %s", count, entry.name)
            if not keep_archives:
                archive.unlink()
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        if folder.exists():  # force=True
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
            else:
                folder.unlink()
        os.replace(staging, folder)
    except OSError as exc:
        raise SnapshotError(f"writing snapshot {manifest.snapshot} into {dest_dir} failed: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


# ====================================================================================================================
# Loaders
# ====================================================================================================================


def _folder(folder: str | os.PathLike[str]) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise SnapshotError(f"{path} is not a folder (pass the folder returned by pull())")
    return path


def _manifest_file_names(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    manifest = _read_local_manifest(folder)
    if manifest is None:
        return []
    return [
        folder.joinpath(*f.name.split("/"))
        for f in manifest.files
        if not f.archive and f.name.lower().endswith(suffixes)
    ]


def _find_file(folder: Path, defaults: tuple[str, ...], suffixes: tuple[str, ...], what: str) -> Path:
    for candidate in [*_manifest_file_names(folder, suffixes), *(folder / d for d in defaults)]:
        if candidate.is_file():
            return candidate
    matches = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
    matches = [p for p in matches if p.name != MANIFEST_NAME]
    if len(matches) == 1:
        return matches[0]
    raise SnapshotError(f"no {what} file found in {folder} (looked for {', '.join(defaults)})")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"cannot read JSON file {path}: {exc}") from exc


def load_coco(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """COCO export (``result.json``): a dict with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in
    pixels), ``categories`` and ``info``. ``images[*].file_name`` is relative to ``folder`` when the image was
    exported, otherwise the task's original image URL."""
    path = _find_file(_folder(folder), ("result.json",), (".json",), "COCO result.json")
    data = _read_json(path)
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise SnapshotError(f"{path} is not a COCO file (expected an object with images, annotations, categories)")
    return data


def _number(text: str | None) -> int | float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    return int(value) if value.is_integer() else value


def load_voc(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Pascal VOC export: one dict per ``Annotations/*.xml`` (sorted by file name)::

    {"annotation_file": "Annotations/cat1.xml", "folder": "images", "filename": "cat1.jpg",
     "size": {"width": 640, "height": 480, "depth": 3},
     "objects": [{"name": "Cat", "bbox": {"xmin": 64, "ymin": 96, "xmax": 256, "ymax": 288},
                  "pose": "Unspecified", "truncated": 0, "difficult": 0}]}
    """
    base = _folder(folder)
    annotations = base / "Annotations"
    if not annotations.is_dir():
        raise SnapshotError(f"no Annotations/ folder in {base}: not a VOC export")
    result: list[dict[str, Any]] = []
    for xml_path in sorted(annotations.rglob("*.xml")):
        try:
            root = ET.parse(xml_path).getroot()
            size = root.find("size")
            objects = []
            for obj in root.findall("object"):
                box = obj.find("bndbox")
                objects.append(
                    {
                        "name": (obj.findtext("name") or "").strip(),
                        "bbox": None
                        if box is None
                        else {k: _number(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")},
                        "pose": (obj.findtext("pose") or "").strip() or None,
                        "truncated": _number(obj.findtext("truncated")),
                        "difficult": _number(obj.findtext("difficult")),
                    }
                )
            result.append(
                {
                    "annotation_file": xml_path.relative_to(base).as_posix(),
                    "folder": (root.findtext("folder") or "").strip() or None,
                    "filename": (root.findtext("filename") or "").strip(),
                    "size": {
                        k: _number(size.findtext(k)) if size is not None else None for k in ("width", "height", "depth")
                    },
                    "objects": objects,
                }
            )
        except (ET.ParseError, ValueError) as exc:
            raise SnapshotError(f"cannot parse VOC file {xml_path}: {exc}") from exc
    return result


def load_yolo(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """YOLO export: ``{"classes": [...], "labels": {image_stem: [(class_id, x_center, y_center, w, h), ...]},
    "notes": <notes.json or None>}``.

    Coordinates are normalized to 0..1. ``class_id`` indexes ``classes``. Label files in sub-folders of
    ``labels/`` are keyed by their relative path without ``.txt``. Lines with more values (YOLO OBB corners,
    keypoints) are returned as longer tuples; images without boxes map to an empty list.
    """
    base = _folder(folder)
    classes_file = base / "classes.txt"
    labels_dir = base / "labels"
    if not classes_file.is_file() or not labels_dir.is_dir():
        raise SnapshotError(f"{base} is not a YOLO export (expected classes.txt and labels/)")
    classes = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels: dict[str, list[tuple[Any, ...]]] = {}
    for txt in sorted(labels_dir.rglob("*.txt")):
        rows: list[tuple[Any, ...]] = []
        for lineno, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
            values = line.split()
            if not values:
                continue
            try:
                rows.append((int(float(values[0])), *(float(v) for v in values[1:])))
            except ValueError as exc:
                raise SnapshotError(f"{txt}:{lineno}: not a YOLO label line: {line!r}") from exc
        labels[txt.relative_to(labels_dir).with_suffix("").as_posix()] = rows
    notes_file = base / "notes.json"
    notes = _read_json(notes_file) if notes_file.is_file() else None
    return {"classes": classes, "labels": labels, "notes": notes}


def load_json(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Label Studio JSON or JSON_MIN export (``result.json``): the list of tasks / flat records."""
    path = _find_file(_folder(folder), ("result.json",), (".json",), "JSON result.json")
    data = _read_json(path)
    if not isinstance(data, list):
        raise SnapshotError(f"{path} is not a Label Studio JSON export (expected a list)")
    return data


def load_csv(folder: str | os.PathLike[str], delimiter: str | None = None) -> list[dict[str, str]]:
    """CSV or TSV export: one dict per row, all values as strings (JSON columns are JSON text).

    The delimiter defaults to a tab for TSV snapshots (per the manifest, or a ``.tsv`` file) and a comma
    otherwise. Note that Label Studio's converter names both ``result.csv``.
    """
    base = _folder(folder)
    path = _find_file(base, ("result.csv", "result.tsv"), (".csv", ".tsv"), "CSV/TSV result")
    if delimiter is None:
        manifest = _read_local_manifest(base)
        is_tsv = (manifest is not None and manifest.format.upper() == "TSV") or path.suffix.lower() == ".tsv"
        delimiter = "\t" if is_tsv else ","
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(max(previous_limit, 2**31 - 1))  # cells may hold large JSON results
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter=delimiter))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cannot read CSV file {path}: {exc}") from exc
    finally:
        csv.field_size_limit(previous_limit)


_LOADERS: dict[str, Callable[[Path], Any]] = {
    "COCO": load_coco,
    "COCO_WITH_IMAGES": load_coco,
    "VOC": load_voc,
    "YOLO": load_yolo,
    "YOLO_WITH_IMAGES": load_yolo,
    "YOLO_OBB": load_yolo,
    "YOLO_OBB_WITH_IMAGES": load_yolo,
    "JSON": load_json,
    "JSON_MIN": load_json,
    "CSV": load_csv,
    "TSV": load_csv,
}


def load(folder: str | os.PathLike[str]) -> Any:
    """Load a pulled snapshot with the loader matching the format in its ``manifest.json``."""
    base = _folder(folder)
    manifest = _read_local_manifest(base)
    if manifest is None:
        raise SnapshotError(
            f"{base} has no {MANIFEST_NAME}: pass the folder returned by pull(), or call load_coco(), load_voc(), "
            "load_yolo(), load_json() or load_csv() directly"
        )
    loader = _LOADERS.get(manifest.format.upper())
    if loader is None:
        raise SnapshotError(
            f"no loader for format {manifest.format!r}; the snapshot's files are in {base} "
            f"(supported: {', '.join(sorted(_LOADERS))})"
        )
    return loader(base)


# ====================================================================================================================
# Command line
# ====================================================================================================================


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def build_pull_parser(prog: str = "label-studio-cortx pull") -> argparse.ArgumentParser:
    """The argument parser of ``label-studio-cortx pull``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Download an annotation snapshot written by a CORTX target storage, verify it and unpack it "
        "into DEST/<snapshot id>/.",
    )
    parser.add_argument("dest", metavar="DEST", nargs="?", help="folder receiving DEST/<snapshot id>/")
    parser.add_argument("--endpoint", help="S3 endpoint URL (default: $CORTX_ENDPOINT or $AWS_ENDPOINT_URL)")
    parser.add_argument("--bucket", required=True, help="bucket of the target storage")
    parser.add_argument("--prefix", default="", help="prefix of the target storage (default: none)")
    parser.add_argument(
        "--snapshot", default=_LATEST, help="'latest' (default) or a snapshot id such as 20261127T203015Z"
    )
    parser.add_argument("--list", action="store_true", help="list the snapshot ids (oldest first) and exit")
    parser.add_argument(
        "--access-key", help="access key id (default: $AWS_ACCESS_KEY_ID; prefer the environment for secrets)"
    )
    parser.add_argument("--secret-key", help="secret access key (default: $AWS_SECRET_ACCESS_KEY)")
    parser.add_argument("--session-token", help="session token (default: $AWS_SESSION_TOKEN)")
    parser.add_argument(
        "--region", default=None, help="signing region (default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1)"
    )
    parser.add_argument("--ca-bundle", metavar="PATH", help="PEM file with the CA that signed the endpoint's TLS cert")
    parser.add_argument("--no-verify-tls", action="store_true", help="do not verify TLS certificates (insecure)")
    parser.add_argument(
        "--virtual-host-style", action="store_true", help="bucket.endpoint addressing instead of path-style"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded zip archives")
    parser.add_argument("--force", action="store_true", help="replace DEST/<snapshot id>/ if it holds something else")
    return parser


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def main_pull(argv: list[str] | None = None) -> int:
    """Entry point of ``label-studio-cortx pull`` (argv without the ``pull`` word). Returns the exit code:
    0 on success, 2 on usage errors and on :class:`SnapshotError` (printed as ``error: ...`` on stderr)."""
    parser = build_pull_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or usage error: argparse already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    endpoint = args.endpoint or _env("CORTX_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if not endpoint:
        return fail("no endpoint: pass --endpoint URL or set CORTX_ENDPOINT (or AWS_ENDPOINT_URL)")
    if not args.list and not args.dest:
        return fail("DEST is required (the folder receiving DEST/<snapshot id>/), unless --list is given")

    try:
        client = make_client(
            endpoint,
            access_key=args.access_key or _env("AWS_ACCESS_KEY_ID"),
            secret_key=args.secret_key or _env("AWS_SECRET_ACCESS_KEY"),
            session_token=args.session_token or _env("AWS_SESSION_TOKEN"),
            region=args.region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
            ca_bundle=args.ca_bundle,
            verify=not args.no_verify_tls,
            path_style=not args.virtual_host_style,
        )
        if args.list:
            snapshots = list_snapshots(client, args.bucket, args.prefix)
            for ts in snapshots:
                print(ts)
            if not snapshots:
                where = f"s3://{args.bucket}/{snapshots_root(args.prefix)}"
                print(f"no snapshots under {where} at {_endpoint(client)}", file=sys.stderr)
            return 0
        folder = pull(
            client,
            args.bucket,
            args.prefix,
            args.dest,
            snapshot=args.snapshot,
            progress=not args.no_progress,
            keep_archives=args.keep_archives,
            force=args.force,
        )
        manifest = _read_local_manifest(folder)
        print(folder)
        if manifest is not None:
            title = f" {manifest.project.title!r}" if manifest.project.title else ""
            print(
                f"{manifest.format} snapshot {manifest.snapshot} of project {manifest.project.id}{title}: "
                f"{len(manifest.files)} file(s), {_human_size(manifest.total_size)}, "
                f"{manifest.task_count} tasks, {manifest.annotation_count} annotations"
            )
        return 0
    except SnapshotError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    _argv = sys.argv[1:]
    if _argv[:1] == ["pull"]:  # accept `python -m label_studio_cortx.datasets pull ...` as well
        _argv = _argv[1:]
    sys.exit(main_pull(_argv))
