"""Snapshots: a project's annotations converted by Label Studio's own export machinery, written to a target bucket.

One responsibility: build a snapshot (Label Studio's export serializer + converter, in a temp folder), upload its
files (multipart for large ones), then write its manifest and, last of all, ``snapshots/latest.json``. The key
layout and manifest schema belong to :mod:`label_studio_cortx.pull.manifest`; the reading side is
:mod:`label_studio_cortx.pull`.

A snapshot is all or nothing: any failure removes what this run uploaded and leaves ``latest.json`` as it was, so
a reader only ever sees complete snapshots and a failed run can simply be repeated.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import TransferConfig
from core.utils.io import SerializableGenerator
from data_export.models import DataExport, Export
from data_export.serializers import SerializationOptionsSerializer
from django.conf import settings
from django.core.files import File
from io_storages.base_models import storage_background_failure
from label_studio_sdk.converter import Converter

from .. import __version__ as plugin_version
from .. import conf
from ..connection.errors import StorageError, translated
from ..pull.manifest import (
    ManifestFile,
    ManifestProject,
    SnapshotManifest,
    archive_name,
    latest_key,
    manifest_key,
    new_snapshot_id,
    snapshot_folder,
    utc_isoformat,
)
from .export import ANNOTATION_JSON

if TYPE_CHECKING:
    from projects.models import Project

logger = logging.getLogger(__name__)

# Which annotations a snapshot holds: everything but skipped ones (ground truth included, unlike LS's
# filter default 'usual only', because ground truth is what training wants most), of tasks that have any.
ANNOTATION_FILTER = {"usual": True, "ground_truth": True, "skipped": False}
TASK_FILTER = {"only_with_annotations": True}


# --- formats ---------------------------------------------------------------------------------------------------------
def format_titles() -> dict[str, str]:
    """Every converter format name with its title, for the storage form (independent of any project)."""
    # Converter.all_formats() is an instance method over this class attribute; an instance needs a config.
    return {fmt.name: info.get("title", fmt.name) for fmt, info in Converter._FORMAT_INFO.items()}


def available_formats(project: Project) -> list[str]:
    """Snapshot formats Label Studio's converter offers for this project's labeling config (its Export dialog's)."""
    return [f["name"] for f in DataExport.get_export_formats(project) if not f.get("disabled")]


def check_format(project: Project | None, export_format: str | None) -> str:
    """The format, normalized, or a StorageError naming it and the formats allowed for the project.

    Without a project (not known yet) any converter format name passes; the sync checks again.
    """
    value = (export_format or "").strip().upper()
    if value == ANNOTATION_JSON:
        return value
    allowed = available_formats(project) if project is not None else list(format_titles())
    if value not in allowed:
        raise StorageError(
            f"Export format '{export_format}' does not fit this project's labeling config. "
            f"Choose {ANNOTATION_JSON} (one JSON object per annotation) or one of: {', '.join(allowed)}."
        )
    return value


# --- build -----------------------------------------------------------------------------------------------------------
@dataclass
class SnapshotFile:
    path: Path
    name: str
    archive: bool = False


@dataclass
class BuiltSnapshot:
    format: str
    task_count: int = 0
    annotation_count: int = 0
    files: list[SnapshotFile] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Delete the converter's temporary output."""
        for handle in self._handles:
            handle.close()


def _export_hostname() -> str | None:
    # data_export.functions.get_export_hostname without a request: only an admin-pinned HOST is trusted.
    if settings.HOSTNAME and not settings.DOMAIN_FROM_REQUEST:
        return settings.HOSTNAME
    return None


def build_snapshot(project: Project, export_format: str, workdir: Path) -> BuiltSnapshot:
    """Export the project as Label Studio's export snapshots do and convert it; everything streams through files.

    An unsaved ``Export`` carries the project: its ``get_export_data`` serializes tasks in batches with
    ``ExportDataSerializer`` and its ``convert_file`` runs the converter and zips directory output, exactly as
    the Export API's snapshot + convert path, without leaving an export row or media file behind.
    """
    export = Export(project=project, created_by=project.organization.created_by)
    built = BuiltSnapshot(format=export_format)
    serialization = SerializationOptionsSerializer(data={})
    serialization.is_valid(raise_exception=True)  # Label Studio's defaults: no history, key-frame setting

    def tasks():
        for task in export.get_export_data(
            task_filter_options=TASK_FILTER,
            annotation_filter_options=ANNOTATION_FILTER,
            serialization_options=dict(serialization.validated_data),
        ):
            built.task_count += 1
            built.annotation_count += len(task.get("annotations") or [])
            yield task

    source = workdir / "export.json"
    with open(source, "wb") as out:
        for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(SerializableGenerator(tasks())):
            out.write(chunk.encode("utf-8"))

    export.file = File(open(source, "rb"), name=str(source))
    converted = export.convert_file(export_format, download_resources=False, hostname=_export_hostname())
    if converted is None:
        raise StorageError(f"Label Studio's converter produced no {export_format} output for this project.")
    built._handles.append(converted)
    # convert_file renames its output after the input file; name it as the converter and the pull side do.
    suffix = Path(converted.name).suffix
    archive = suffix == ".zip"
    name = archive_name(export_format) if archive else f"result{suffix}"
    built.files.append(SnapshotFile(Path(converted.file.name), name, archive))
    return built


# --- upload ----------------------------------------------------------------------------------------------------------
def _free_snapshot_id(client, bucket: str, prefix: str | None) -> str:
    """A snapshot id whose folder is empty: ids have one-second resolution, and a reused folder would mix runs."""
    for _ in range(5):
        snapshot = new_snapshot_id()
        listing = client.list_objects_v2(Bucket=bucket, Prefix=snapshot_folder(prefix, snapshot), MaxKeys=1)
        if not listing.get("KeyCount"):
            return snapshot
        time.sleep(1.05 - time.time() % 1)
    raise StorageError("Could not find a free snapshot id: another snapshot is being written to this prefix.")


def _version(dist: str) -> str:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return ""


def upload_snapshot(storage, built: BuiltSnapshot) -> SnapshotManifest:
    """Upload the files, then ``<id>/manifest.json``, then ``latest.json``.

    A failure before the manifest is written removes this run's objects again; ``latest.json`` is untouched.
    """
    with translated(storage.s3_endpoint, bucket=storage.bucket, what="snapshot upload"):
        return _upload(storage, storage.get_client(), built)


def _upload(storage, client, built: BuiltSnapshot) -> SnapshotManifest:
    bucket, prefix = storage.bucket, storage.prefix
    threshold = conf.multipart_threshold()
    transfer = TransferConfig(
        multipart_threshold=threshold, multipart_chunksize=threshold, max_concurrency=conf.export_workers()
    )
    written: list[str] = []
    try:
        snapshot = _free_snapshot_id(client, bucket, prefix)
        manifest = SnapshotManifest(
            snapshot=snapshot,
            created_at=utc_isoformat(),
            format=built.format,
            project=ManifestProject(id=storage.project.id, title=storage.project.title or ""),
            label_studio_version=_version("label-studio"),
            plugin_version=plugin_version,
            task_count=built.task_count,
            annotation_count=built.annotation_count,
        )
        for item in built.files:
            entry = ManifestFile.for_file(item.path, prefix, snapshot, name=item.name, archive=item.archive)
            content_type = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
            written.append(entry.key)
            # upload_file returns only once the object (every part, for multipart) is complete.
            client.upload_file(
                str(item.path), bucket, entry.key, ExtraArgs={"ContentType": content_type}, Config=transfer
            )
            manifest.files.append(entry)
        body = manifest.to_json().encode("utf-8")
        written.append(manifest_key(prefix, snapshot))
        client.put_object(Bucket=bucket, Key=written[-1], Body=body, ContentType="application/json")
    except Exception:
        _remove(client, bucket, written)
        raise
    # Last: readers start from latest.json, so they never see a snapshot before all of its files. If this
    # PUT fails the snapshot stays complete under its id (it may even have landed), so nothing is removed.
    client.put_object(Bucket=bucket, Key=latest_key(prefix), Body=body, ContentType="application/json")
    return manifest


def _remove(client, bucket: str, keys: list[str]) -> None:
    # One key at a time: CORTX needs Content-MD5 on DeleteObjects, which botocore no longer sends.
    for key in keys:
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            logger.warning("Could not remove s3://%s/%s of a failed snapshot: %s", bucket, key, exc)


# --- entry points ----------------------------------------------------------------------------------------------------
def snapshot_format(storage, export_format: str | None = None) -> str:
    """The format a snapshot of ``storage`` is written in: the one asked for, else the storage's own."""
    export_format = check_format(storage.project, export_format or storage.export_format)
    if export_format == ANNOTATION_JSON:
        raise StorageError(f"{ANNOTATION_JSON} writes one object per annotation, not a snapshot: choose a format.")
    return export_format


def write_snapshot(storage, export_format: str | None = None) -> SnapshotManifest:
    """Build and upload one snapshot of the storage's project; returns its manifest. Touches no annotations."""
    export_format = snapshot_format(storage, export_format)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cortx-snapshot-", dir=settings.FILE_UPLOAD_TEMP_DIR) as tmp:
        built = build_snapshot(storage.project, export_format, Path(tmp))
        try:
            manifest = upload_snapshot(storage, built)
        finally:
            built.close()
    logger.info(
        "CORTX storage %s: %s snapshot %s (%d tasks, %d annotations, %d bytes) in %.1f s",
        storage.pk,
        manifest.format,
        manifest.snapshot,
        manifest.task_count,
        manifest.annotation_count,
        manifest.total_size,
        time.monotonic() - started,
    )
    return manifest


def sync_snapshot(storage, export_format: str | None = None) -> SnapshotManifest:
    """A snapshot as a target sync: status bookkeeping around :func:`write_snapshot` (the storage is QUEUED).

    Failures propagate: Label Studio's ``sync()`` (or :func:`run_snapshot`) records them as the storage's status.
    """
    storage.info_set_in_progress()
    manifest = write_snapshot(storage, export_format)
    storage.info_set_completed(
        last_sync_count=manifest.annotation_count,
        total_annotations=manifest.annotation_count,
        snapshot=manifest.snapshot,
        snapshot_format=manifest.format,
        snapshot_tasks=manifest.task_count,
        snapshot_bytes=manifest.total_size,
        snapshot_manifest=latest_key(storage.prefix),
    )
    return manifest


def snapshot_background(storage_class, storage_id: int, export_format: str | None = None, **kwargs) -> None:
    """The snapshot job, run where target syncs run (RQ, or a server thread); the storage is QUEUED."""
    sync_snapshot(storage_class.objects.get(pk=storage_id), export_format)


def run_snapshot(storage, export_format: str | None = None) -> SnapshotManifest:
    """A snapshot on demand (API, management command), shown in the storage's status like a sync."""
    if not storage.info_set_queued():
        raise StorageError(f"Storage {storage.pk} is already syncing; try again when it has finished.")
    try:
        return sync_snapshot(storage, export_format)
    except Exception:
        storage_background_failure(storage)  # records the message as the storage's failed status
        raise
