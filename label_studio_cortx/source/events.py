"""Bucket notifications: S3 event records (as Ceph RGW and MinIO push them) turned into the sync's own changes.

Two halves:

- :func:`parse_notification` reads a request body (the standard S3 format: ``Records[].eventName``,
  ``s3.bucket.name``, URL-encoded ``s3.object.key`` (not encoded by Ceph RGW), ``eTag``, ``sequencer``) into
  :class:`EventRecord`\\ s, with
  hostile input bounded (body size by the caller, number of records, key length, field types). Anything
  malformed raises :class:`MalformedEvents` and nothing is kept.
- :func:`apply_pending` applies the events a storage has queued (``storage.pending_events``), batch by batch,
  with the sync's code path: the storage's prefix / recursive / regex rules (``listing``), tasks and links made
  by ``tasks.create_tasks`` after the same "already linked" check as a sync, task files read by ``task_files``,
  ETag changes handled by ``reconcile.mark_seen``; removals follow the storage's reconciliation options.

Duplicates and disorder are harmless by construction: per key only the last event of a batch counts (by S3's
``sequencer``, then arrival), a created key that is already linked with the same ETag is skipped without a
request, and before a task is created or removed the store is asked whether the object exists (HEAD), so a
stale "removed" never deletes a task whose object is there, nor a stale "created" makes a task for a deleted one.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError
from django.utils import timezone
from tasks.models import Task

from .. import conf
from ..connection.errors import StorageError, translated
from . import patterns, reconcile, sync
from .listing import list_params
from .task_files import TaskFile
from .tasks import SyncProgress, create_tasks

# S3 keys are at most 1024 bytes (UTF-8).
MAX_KEY_BYTES = 1024
_HEX = re.compile(r"[0-9A-Fa-f]{0,64}")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class MalformedEvents(StorageError):
    """A notification body that is not in the S3 event format (answered 400, nothing kept)."""


@dataclass(frozen=True)
class EventRecord:
    key: str
    removed: bool
    sequencer: str = ""
    etag: str | None = None


def parse_notification(body: bytes, bucket: str, max_records: int) -> list[EventRecord]:
    """The object-created/removed records of ``bucket`` in a notification body; other events and other buckets'
    records are left out. Raises :class:`MalformedEvents` for anything not in the format."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvents("The body is not JSON.") from None
    if not isinstance(document, dict) or not isinstance(document.get("Records", []), list):
        raise MalformedEvents('Expected a JSON object with a "Records" list (S3 event notification format).')
    records = document.get("Records") or []
    if len(records) > max_records:
        raise MalformedEvents(f"Too many records: {len(records)} (at most {max_records} per request).")
    found = []
    for index, record in enumerate(records):
        event = _parse_record(record, index, bucket)
        if event is not None:
            found.append(event)
    return found


def _parse_record(record, index: int, bucket: str) -> EventRecord | None:
    where = f"Records[{index}]"
    if not isinstance(record, dict):
        raise MalformedEvents(f"{where} is not an object.")
    name = record.get("eventName")
    if not isinstance(name, str) or len(name) > 128:
        raise MalformedEvents(f"{where}.eventName is missing or not a string.")
    # AWS and RGW: "ObjectCreated:Put"; MinIO: "s3:ObjectCreated:Put".
    kind = name.removeprefix("s3:").split(":", 1)[0]
    s3 = record.get("s3")
    if not isinstance(s3, dict) or not isinstance(s3.get("object"), dict) or not isinstance(s3.get("bucket"), dict):
        raise MalformedEvents(f"{where}.s3.bucket / {where}.s3.object is missing.")
    obj, record_bucket = s3["object"], s3["bucket"].get("name")
    raw_key, sequencer, etag = obj.get("key"), obj.get("sequencer", ""), obj.get("eTag")
    if not isinstance(raw_key, str) or not raw_key or len(raw_key) > 3 * MAX_KEY_BYTES:
        raise MalformedEvents(f"{where}.s3.object.key is missing or too long.")
    # S3 and MinIO URL-encode the key (a space as '+'); Ceph RGW (16.2, measured) sends it as it is.
    key = raw_key if record.get("eventSource") == "ceph:s3" else unquote_plus(raw_key)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or "\x00" in key:
        raise MalformedEvents(f"{where}.s3.object.key is not a valid S3 key.")
    if not isinstance(sequencer, str) or not _HEX.fullmatch(sequencer):
        raise MalformedEvents(f"{where}.s3.object.sequencer is not a hex string.")
    if etag is not None and (not isinstance(etag, str) or len(etag) > 128):
        raise MalformedEvents(f"{where}.s3.object.eTag is not a string.")
    if not isinstance(record_bucket, str):
        raise MalformedEvents(f"{where}.s3.bucket.name is missing.")
    if kind not in ("ObjectCreated", "ObjectRemoved") or record_bucket != bucket:
        return None
    return EventRecord(key=key, removed=kind == "ObjectRemoved", sequencer=sequencer, etag=_quoted(etag))


def _quoted(etag: str | None) -> str | None:
    """An ETag as a listing shows it (quoted); events carry it bare."""
    if not etag:
        return None
    return etag if etag.startswith('"') else f'"{etag}"'


def key_filter(storage):
    """The storage's listing rules for one key: prefix, recursive scan (no folder below the prefix), regex."""
    prefix = list_params(storage).get("Prefix", "")
    try:
        wanted = patterns.matcher(storage.regex_filter)
    except patterns.PatternError:
        return lambda key: False

    def accept(key: str) -> bool:
        if not key.startswith(prefix) or key.endswith("/"):
            return False
        if not storage.recursive_scan and "/" in key[len(prefix) :]:
            return False
        return bool(wanted(key))

    return accept


def latest_per_key(events) -> dict:
    """Per key, the event that happened last: highest sequencer (S3 sequencers of one key grow; compared as
    numbers, so shorter ones are left-padded), then latest arrival (``id``)."""
    latest: dict = {}
    for event in events:
        order = (int(event.sequencer or "0", 16), event.id)
        if event.key not in latest or order > latest[event.key][0]:
            latest[event.key] = (order, event)
    return {key: event for key, (_, event) in latest.items()}


def _exists(client, storage, key: str) -> tuple[bool, str | None]:
    """(object exists, its ETag), by HEAD. Any failure other than "not found" raises: the batch is retried."""
    with translated(storage.s3_endpoint or "", bucket=storage.bucket, what=f"HEAD of {key}"):
        try:
            head = client.head_object(Bucket=storage.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False, None
            raise
    return True, head.get("ETag")


def apply_pending(storage, link_class) -> SyncProgress:
    """Apply the storage's queued bucket events, oldest first, in batches; the storage must be claimed
    (``info_set_queued``) by the caller, which also handles a failure (the events stay queued)."""
    storage.info_set_in_progress()
    progress = SyncProgress()
    started = timezone.now()
    accept = key_filter(storage)
    client = storage.get_client()
    applied = 0
    with ThreadPoolExecutor(max_workers=conf.read_workers()) as pool:
        while True:
            batch = list(storage.pending_events.order_by("id")[: conf.events_batch_size()])
            if not batch:
                break
            events = {key: event for key, event in latest_per_key(batch).items() if accept(key)}
            _apply_batch(storage, link_class, events, progress, started, client, pool)
            storage.pending_events.filter(id__in=[event.id for event in batch]).delete()
            applied += len(batch)
            storage.info_update_progress(
                last_sync_count=progress.created, tasks_existed=progress.existed, errors=progress.error_count
            )
    counts = {
        "events_applied": applied,
        "tasks_existed": progress.existed,
        "tasks_removed": progress.removed,
        "tasks_missing_kept": progress.kept_missing,
    }
    return sync.finish(storage, link_class, progress, counts)


def _apply_batch(storage, link_class, events: dict, progress, started, client, pool) -> None:
    if not events:
        return
    linked = dict(
        link_class.objects.filter(storage=storage, key__in=list(events)).values_list("key", "object_etag").distinct()
    )
    to_check, known_changed = [], []
    for key, event in events.items():
        if event.removed:
            if key in linked:
                to_check.append(key)
        elif key not in linked:
            to_check.append(key)
        elif event.etag and linked[key] and event.etag != linked[key]:
            known_changed.append({"Key": key, "ETag": event.etag})
            progress.existed += 1
        else:
            progress.existed += 1  # a duplicate, or an object already imported by a sync
    states = dict(zip(to_check, pool.map(lambda key: _exists(client, storage, key), to_check), strict=True))
    created = [{"Key": key, "ETag": etag} for key, (there, etag) in states.items() if there and key not in linked]
    gone = [key for key, (there, _) in states.items() if not there and key in linked]
    if created:
        partial: dict[str, TaskFile] = {}
        objects = sync.read_new_objects(storage, created, None if storage.use_blob_urls else pool, progress, partial)
        etags = {entry["Key"]: entry["ETag"] for entry in created}
        ids = create_tasks(storage, link_class, objects, progress, etags, started)
        progress.add_created(ids)
        if partial:
            sync.record_partial_files(storage, partial, etags)
    if known_changed and storage.sync_update_changed:
        reconcile.mark_seen(storage, link_class, known_changed, started, progress)
    if gone:
        _remove(storage, link_class, gone, progress)


def _remove(storage, link_class, keys: list[str], progress) -> None:
    """Objects that are gone: their tasks removed (``sync_remove_missing``), or their links only marked;
    tasks with annotations are only marked unless ``sync_touch_annotated``."""
    links = link_class.objects.filter(storage=storage, key__in=keys)
    if not storage.sync_remove_missing:
        progress.kept_missing += links.update(object_exists=False)
        return
    if storage.sync_touch_annotated:
        removable = links
    else:
        removable = links.filter(task__total_annotations=0, task__cancelled_annotations=0)
        progress.kept_missing += links.exclude(pk__in=removable.values("pk")).update(object_exists=False)
    task_ids = list(removable.values_list("task_id", flat=True))
    for start in range(0, len(task_ids), 500):
        Task.delete_tasks_without_signals(Task.objects.filter(pk__in=task_ids[start : start + 500]))
    progress.removed += len(task_ids)
