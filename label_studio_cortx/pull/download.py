"""Listing snapshots, reading manifests, and downloading one snapshot: resumed, verified, unpacked safely."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import sys
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)
from tqdm import tqdm

from .errors import STREAM_ERRORS, ChecksumMismatch, SnapshotError, endpoint_of, error_code, is_not_found, s3_error
from .loaders import read_local_manifest
from .manifest import (
    MANIFEST_NAME,
    ManifestFile,
    SnapshotManifest,
    is_snapshot_id,
    latest_key,
    manifest_key,
    normalize_prefix,
    snapshots_root,
)

logger = logging.getLogger(__name__)

#: Bytes read per chunk when streaming objects and archives.
CHUNK_SIZE = 1024 * 1024
#: Largest manifest accepted (a manifest lists a handful of files; anything bigger is not a manifest).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: How often an interrupted download is resumed (HTTP Range request) before giving up.
MAX_RESUMES = 3

LATEST = "latest"


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
        raise s3_error(exc, client, bucket, prefix=root) from exc
    return sorted(found)


def _manifest_location(prefix: str | None, snapshot: str | None) -> tuple[str, str | None]:
    if snapshot in (None, "", LATEST):
        return latest_key(prefix), None
    if not is_snapshot_id(snapshot):
        raise SnapshotError(
            f"invalid snapshot {snapshot!r}: use 'latest' or a snapshot id like 20261127T203015Z (see --list)"
        )
    return manifest_key(prefix, snapshot), snapshot


def read_manifest(client: Any, bucket: str, prefix: str | None, snapshot: str = LATEST) -> SnapshotManifest:
    """Read and validate the manifest of ``snapshot`` (``"latest"`` or an id from :func:`list_snapshots`)."""
    key, ts = _manifest_location(prefix, snapshot)
    endpoint = endpoint_of(client)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            raw = body.read(MAX_MANIFEST_BYTES + 1)
        finally:
            body.close()
    except ClientError as exc:
        if is_not_found(exc):
            if ts is None:
                raise SnapshotError(
                    f"no snapshot found: s3://{bucket}/{key} does not exist at {endpoint}. Check --prefix "
                    f"(the storage prefix, here {normalize_prefix(prefix)!r}) and that a snapshot has been written"
                ) from exc
            raise SnapshotError(
                f"snapshot {ts} not found: s3://{bucket}/{key} does not exist at {endpoint} "
                "(run with --list to see the available snapshots)"
            ) from exc
        raise s3_error(exc, client, bucket, key=key) from exc
    except BotoCoreError as exc:
        raise s3_error(exc, client, bucket, key=key) from exc
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


def _download_file(client: Any, bucket: str, entry: ManifestFile, target: Path, bar: tqdm, snapshot: str) -> None:
    """Stream one object to ``target`` through ``target.part``, verifying size and SHA-256.

    An interrupted stream is resumed with a Range request pinned to the object's ETag (If-Match), so an object
    overwritten mid-download is detected instead of being silently stitched together.
    """
    endpoint = endpoint_of(client)
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
                except STREAM_ERRORS as exc:
                    resumes += 1
                    if resumes > MAX_RESUMES:
                        raise s3_error(exc, client, bucket, key=entry.key) from exc
                    logger.warning("download of s3://%s/%s interrupted (%s), resuming", bucket, entry.key, exc)
                except ClientError as exc:
                    code = error_code(exc)[0]
                    if is_not_found(exc):
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
                    raise s3_error(exc, client, bucket, key=entry.key) from exc
                except BotoCoreError as exc:
                    raise s3_error(exc, client, bucket, key=entry.key) from exc
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


def pull(
    client: Any,
    bucket: str,
    prefix: str | None,
    dest: str | os.PathLike[str],
    snapshot: str = LATEST,
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
            existing = read_local_manifest(folder) if folder.is_dir() else None
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
