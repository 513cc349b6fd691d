"""Reading a source bucket into tasks: the whole import sync lives here.

Label Studio's own storage sync creates one task at a time (about 13 SQL statements per object).
Here a sync walks the bucket one listing page at a time and, per page, asks the database once
which keys are already linked, reads new task files concurrently, and bulk-creates the tasks and
their links. Memory stays bounded by one page, and a re-sync that finds nothing new costs one
listing pass plus one query per page.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from io_storages.utils import StorageObject, load_tasks_json

from . import conf

logger = logging.getLogger(__name__)

# Errors by which a store says it has no ListObjectsV2; V1 with markers is used instead.
_V2_UNSUPPORTED = {"NotImplemented", "InvalidArgument", "InvalidRequest", "MethodNotAllowed"}
_TASK_FILE_EXTENSIONS = (".json", ".jsonl")
MAX_REPORTED_ERRORS = 50


# --- listing ------------------------------------------------------------------------------------
def list_params(storage) -> dict:
    """ListObjects parameters for a source storage, the same for checking and for syncing."""
    params = {}
    if storage.prefix:
        params["Prefix"] = storage.prefix.rstrip("/") + "/"
    if not storage.recursive_scan:
        params["Delimiter"] = "/"
    return params


def iter_pages(client, bucket: str, params: dict, page_size: int = 1000) -> Iterator[list[dict]]:
    """Yield the object entries of each listing page; never holds more than one page."""
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": page_size}, **params):
            yield page.get("Contents", [])
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _V2_UNSUPPORTED:
            raise
        logger.info("ListObjectsV2 is not supported by the endpoint, falling back to ListObjects (V1)")
    paginator = client.get_paginator("list_objects")
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": page_size}, **params):
        yield page.get("Contents", [])


def iter_object_pages(storage) -> Iterator[list[dict]]:
    """Listing pages of a source storage, with folders and keys outside the regex filter removed."""
    regex = re.compile(storage.regex_filter) if storage.regex_filter else None
    client = storage.get_client()
    try:
        for page in iter_pages(client, storage.bucket, list_params(storage)):
            yield [obj for obj in page if not obj["Key"].endswith("/") and (regex is None or regex.match(obj["Key"]))]
    except Exception as exc:
        raise storage.connection_error(exc) from None


def read_ahead(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a thread up to ``depth`` items ahead: the next listing page is fetched over
    the network while the current one is written to the database."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            items.put(("error", exc))
            return
        items.put(("done", None))

    thread = threading.Thread(target=produce, name="cortx-list-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


def iter_objects(storage) -> Iterator[dict]:
    for page in iter_object_pages(storage):
        yield from page


# --- reading task data --------------------------------------------------------------------------
def read_task_data(storage, key: str, client=None) -> list[StorageObject]:
    """Task data for one object: a link to the object (files mode) or the tasks in a JSON/JSONL file."""
    if storage.use_blob_urls:
        return [StorageObject(key=key, task_data={settings.DATA_UNDEFINED_NAME: f"s3://{storage.bucket}/{key}"})]
    client = client or storage.get_client()
    try:
        body = client.get_object(Bucket=storage.bucket, Key=key)["Body"]
        if key.lower().endswith(".jsonl"):
            return list(_iter_jsonl(body, key))
        return list(load_tasks_json(body.read(), key))
    except (ValueError, UnicodeDecodeError) as exc:
        cause = exc.__cause__ or exc
        raise TaskFileError(key, f"not a valid JSON/JSONL task file ({cause})") from None
    except Exception as exc:
        raise TaskFileError(key, str(storage.connection_error(exc))) from None


def _iter_jsonl(body, key: str) -> Iterator[StorageObject]:
    """Stream a JSONL file line by line, so a large file is never held whole."""
    for index, line in enumerate(body.iter_lines()):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {index + 1} is not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {index + 1} is not a JSON object")
        yield StorageObject(key=key, task_data=record, row_index=index)


class TaskFileError(Exception):
    """A task file that could not be read or parsed; the sync reports it by key and goes on."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


# --- creating tasks -----------------------------------------------------------------------------
@dataclass
class SyncProgress:
    created: int = 0
    existed: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    task_ids_for_webhook: list[int] = field(default_factory=list)
    updated: int = 0
    removed: int = 0
    kept_missing: int = 0

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    def report(self) -> list[str]:
        hidden = self.error_count - len(self.errors)
        return self.errors + ([f"... and {hidden} more"] if hidden else [])


def _split_task(record: dict) -> tuple[dict, dict, bool]:
    """(data, meta, needs_full_import): tasks with annotations or predictions take Label Studio's path."""
    rich = bool(record.get("annotations") or record.get("predictions"))
    if isinstance(record.get("data"), dict):
        return record["data"], record.get("meta") or {}, rich
    return record, {}, rich


def _next_inner_id(project) -> int:
    from tasks.models import Task

    last = Task.objects.filter(project=project).order_by("-inner_id").values_list("inner_id", flat=True).first()
    return (last or 0) + 1


def create_tasks(
    storage, link_class, objects: list[StorageObject], progress: SyncProgress, etags: dict | None = None, seen=None
) -> list[int]:
    """Create tasks and links for new storage objects in one transaction; return the new task ids."""
    from projects.models import Project
    from tasks.models import Task

    if not objects:
        return []
    project = storage.project
    with transaction.atomic():
        if connection.vendor != "sqlite":
            # Serialize inner_id allocation with Label Studio's own importers.
            Project.objects.select_for_update().filter(pk=project.pk).first()
        inner_id = _next_inner_id(project)
        plain: list[tuple[StorageObject, Task]] = []
        rich: list[StorageObject] = []
        for obj in objects:
            data, meta, needs_full_import = _split_task(obj.task_data)
            if needs_full_import:
                rich.append(obj)
                continue
            plain.append(
                (
                    obj,
                    Task(
                        project=project,
                        data=data,
                        meta=meta,
                        overlap=project.maximum_annotations,
                        inner_id=inner_id,
                        allow_skip=obj.task_data.get("allow_skip", True),
                    ),
                )
            )
            inner_id += 1
        tasks = Task.objects.bulk_create([task for _, task in plain], batch_size=settings.BATCH_SIZE)
        if tasks and tasks[0].pk is None:
            # Databases that cannot return ids from a bulk insert: read them back in creation order.
            ids = list(
                Task.objects.filter(project=project, inner_id__gte=tasks[0].inner_id)
                .order_by("inner_id")
                .values_list("id", flat=True)
            )
            for task, pk in zip(tasks, ids, strict=True):
                task.pk = task.id = pk
        link_class.objects.bulk_create(
            [
                link_class(
                    task_id=task.pk,
                    key=obj.key,
                    row_index=obj.row_index,
                    row_group=obj.row_group,
                    storage=storage,
                    object_etag=(etags or {}).get(obj.key),
                    seen_at=seen,
                )
                for obj, task in plain
            ],
            batch_size=settings.BATCH_SIZE,
        )
        created_ids = [task.pk for task in tasks]

    for obj in rich:
        # Predictions and annotations need Label Studio's serializers; such tasks are rare.
        try:
            task = storage.add_task(
                project, project.maximum_annotations, _next_inner_id(project), storage, obj, link_class
            )
            created_ids.append(task.pk)
        except Exception as exc:
            progress.error(f"{obj.key}: task {obj.row_index or 0} was not imported ({exc})")
    if created_ids and hasattr(project, "summary"):
        project.summary.update_data_columns(Task.objects.filter(pk__in=created_ids).only("id", "data"))
    return created_ids


def _read_new_objects(storage, entries: list[dict], pool: ThreadPoolExecutor | None, progress) -> list[StorageObject]:
    if storage.use_blob_urls:
        return [obj for entry in entries for obj in read_task_data(storage, entry["Key"])]
    candidates = []
    for entry in entries:
        if entry["Key"].lower().endswith(_TASK_FILE_EXTENSIONS):
            candidates.append(entry["Key"])
        else:
            progress.error(
                f"{entry['Key']}: not a JSON/JSONL task file. To create one task per object (images, audio, "
                'text...), set the import method to "Files".'
            )
    client = storage.get_client()
    results: list[StorageObject] = []
    for outcome in pool.map(lambda key: _read_or_error(storage, key, client), candidates):
        if isinstance(outcome, TaskFileError):
            progress.error(str(outcome))
        else:
            results.extend(outcome)
    return results


def _read_or_error(storage, key: str, client):
    try:
        return read_task_data(storage, key, client)
    except TaskFileError as exc:
        return exc


def scan_and_create_links(storage, link_class) -> SyncProgress:
    """The import sync: every new object of the bucket becomes tasks, page by page."""
    from fsm.functions import backfill_fsm_states_for_tasks
    from webhooks.models import WebhookAction
    from webhooks.utils import emit_webhooks_for_instance

    storage.info_set_in_progress()
    progress = SyncProgress()
    started = timezone.now()
    pool = None if storage.use_blob_urls else ThreadPoolExecutor(max_workers=conf.read_workers())
    try:
        for entries in read_ahead(iter_object_pages(storage)):
            if not entries:
                continue
            keys = [entry["Key"] for entry in entries]
            existing = set(link_class.objects.filter(storage=storage, key__in=keys).values_list("key", flat=True))
            progress.existed += len(existing)
            new_entries = [entry for entry in entries if entry["Key"] not in existing]
            objects = _read_new_objects(storage, new_entries, pool, progress)
            etags = {entry["Key"]: entry.get("ETag") for entry in new_entries}
            created = create_tasks(storage, link_class, objects, progress, etags, started)
            progress.created += len(created)
            progress.task_ids_for_webhook.extend(created)
            if len(progress.task_ids_for_webhook) >= settings.WEBHOOK_BATCH_SIZE:
                emit_webhooks_for_instance(
                    storage.project.organization,
                    storage.project,
                    WebhookAction.TASKS_CREATED,
                    progress.task_ids_for_webhook,
                )
                progress.task_ids_for_webhook = []
            if storage.sync_remove_missing or storage.sync_update_changed:
                from .reconcile import mark_seen

                mark_seen(storage, link_class, entries, started, progress)
            storage.info_update_progress(
                last_sync_count=progress.created, tasks_existed=progress.existed, errors=progress.error_count
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=True)

    if storage.sync_remove_missing:
        from .reconcile import remove_missing

        remove_missing(storage, link_class, started, progress)
    if progress.task_ids_for_webhook:
        emit_webhooks_for_instance(
            storage.project.organization, storage.project, WebhookAction.TASKS_CREATED, progress.task_ids_for_webhook
        )
    backfill_fsm_states_for_tasks(storage.id, progress.created, link_class)
    storage.project.update_tasks_states(
        maximum_annotations_changed=False, overlap_cohort_percentage_changed=False, tasks_number_changed=True
    )
    counts = {"tasks_existed": progress.existed}
    if storage.sync_update_changed:
        counts["tasks_updated"] = progress.updated
    if storage.sync_remove_missing:
        counts.update(tasks_removed=progress.removed, tasks_missing_kept=progress.kept_missing)
    if progress.error_count:
        storage.info_set_completed_with_errors(
            last_sync_count=progress.created, validation_errors=progress.report(), errors=progress.error_count, **counts
        )
    else:
        storage.info_set_completed(last_sync_count=progress.created, **counts)
    return progress
