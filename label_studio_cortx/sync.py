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
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from io_storages.utils import StorageObject, load_tasks_json

from . import conf, patterns
from .errors import StorageConnectionError

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
    try:
        wanted = patterns.matcher(storage.regex_filter)
    except patterns.PatternError as exc:
        # A storage saved before filters were checked with RE2: refuse it here rather than run it with re.
        raise StorageConnectionError(str(exc)) from None
    client = storage.get_client()
    try:
        for page in iter_pages(client, storage.bucket, list_params(storage)):
            yield [obj for obj in page if not obj["Key"].endswith("/") and wanted(obj["Key"])]
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
MAX_PROBLEMS_PER_FILE = 50
# One JSONL line is one task: far below this; a longer line is reported, never held.
MAX_JSONL_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class CappedMessages:
    """Messages for a status or a report: all are counted, the first ``cap`` are kept, the rest summed up."""

    cap: int
    more: str = "more"
    kept: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.kept) < self.cap:
            self.kept.append(message)

    def report(self) -> list[str]:
        hidden = self.count - len(self.kept)
        return self.kept + ([f"... and {hidden} {self.more}"] if hidden else [])


@dataclass
class TaskFile:
    """What one object holds: the tasks it could read, and the lines it could not (JSONL only)."""

    key: str
    objects: list[StorageObject]
    problems: CappedMessages = field(default_factory=lambda: CappedMessages(MAX_PROBLEMS_PER_FILE, "more bad lines"))


def read_task_file(storage, key: str, client=None) -> TaskFile:
    """Task data for one object: a link to the object (files mode) or the tasks in a JSON/JSONL file.

    A JSONL file keeps its good lines: each bad line is a problem named by its line number, and only a
    file with no readable line at all fails as a whole (TaskFileError).
    """
    if storage.use_blob_urls:
        return TaskFile(
            key, [StorageObject(key=key, task_data={settings.DATA_UNDEFINED_NAME: f"s3://{storage.bucket}/{key}"})]
        )
    client = client or storage.get_client()
    try:
        body = client.get_object(Bucket=storage.bucket, Key=key)["Body"]
        if key.lower().endswith(".jsonl"):
            result = TaskFile(key, [])
            result.objects = list(_iter_jsonl(body, result))
            if not result.objects and result.problems.count:
                raise TaskFileError(key, "no line is a valid task: " + "; ".join(result.problems.report()[:3]))
            return result
        return TaskFile(key, list(load_tasks_json(body.read(), key)))
    except TaskFileError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        cause = exc.__cause__ or exc
        raise TaskFileError(key, f"not a valid JSON/JSONL task file ({cause})") from None
    except Exception as exc:
        raise TaskFileError(key, str(storage.connection_error(exc))) from None


def read_task_data(storage, key: str, client=None) -> list[StorageObject]:
    """The tasks one object holds (what Label Studio's ``get_data`` returns); bad JSONL lines are left out."""
    return read_task_file(storage, key, client).objects


def _iter_jsonl(body, result: TaskFile) -> Iterator[StorageObject]:
    """Stream a JSONL file line by line, so a large file is never held whole; bad lines become problems.

    ``row_index`` is the line's index in the file, so a line fixed later keeps its place and a re-sync
    can tell which rows already have tasks.
    """
    for index, line in enumerate(_bounded_lines(body, MAX_JSONL_LINE_BYTES)):
        if line is None:
            result.problems.add(f"line {index + 1} is longer than {MAX_JSONL_LINE_BYTES // (1024 * 1024)} MiB")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            result.problems.add(f"line {index + 1} is not valid JSON ({str(exc)[:100]})")
            continue
        if not isinstance(record, dict):
            result.problems.add(f"line {index + 1} is not a JSON object")
            continue
        yield StorageObject(key=result.key, task_data=record, row_index=index)


def _bounded_lines(body, limit: int, chunk_size: int = 1024 * 1024) -> Iterator[bytes | None]:
    """The lines of a streamed body; ``None`` stands for a line longer than ``limit``, which is skipped
    without being held (a file with no line breaks must not be read into memory whole)."""
    pending = b""
    skipping = False
    for chunk in body.iter_chunks(chunk_size):
        pending += chunk
        while True:
            end = pending.find(b"\n")
            if end < 0:
                break
            line, pending = pending[:end], pending[end + 1 :]
            if skipping:
                skipping = False
                yield None
            else:
                yield line
        if not skipping and len(pending) > limit:
            skipping = True
        if skipping:
            pending = b""
    if skipping:
        yield None
    elif pending:
        yield pending


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
    errors: CappedMessages = field(default_factory=lambda: CappedMessages(MAX_REPORTED_ERRORS))
    task_ids_for_webhook: list[int] = field(default_factory=list)
    updated: int = 0
    removed: int = 0
    kept_missing: int = 0

    def error(self, message: str) -> None:
        self.errors.add(message)

    @property
    def error_count(self) -> int:
        return self.errors.count

    def report(self) -> list[str]:
        return self.errors.report()


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


def _read_new_objects(
    storage, entries: list[dict], pool: ThreadPoolExecutor | None, progress, partial: dict[str, TaskFile]
) -> list[StorageObject]:
    """The tasks of a page's new objects; task files read in part are added to ``partial`` by key."""
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
            continue
        results.extend(outcome.objects)
        if outcome.problems.count:
            partial[outcome.key] = outcome
            for problem in outcome.problems.report():
                progress.error(f"{outcome.key}: {problem}")
    return results


def _read_or_error(storage, key: str, client):
    try:
        return read_task_file(storage, key, client)
    except TaskFileError as exc:
        return exc


def _revisit_partial_files(storage, link_class, entries: list[dict], progress, started, partial: dict) -> None:
    """Task files of this page that were imported in part: report their bad lines again while unchanged;
    once changed, read them again and add the rows that have no task yet."""
    from .models import CortxTaskFileProblem

    by_key = {entry["Key"]: entry for entry in entries}
    known = CortxTaskFileProblem.objects.filter(storage=storage, key__in=list(by_key))
    for record in known:
        etag = by_key[record.key].get("ETag")
        if record.etag == etag:
            for problem in record.problems:
                progress.error(f"{record.key}: {problem}")
            continue
        try:
            file = read_task_file(storage, record.key)
        except TaskFileError as exc:
            progress.error(str(exc))
            continue
        linked = set(link_class.objects.filter(storage=storage, key=record.key).values_list("row_index", flat=True))
        missing = [obj for obj in file.objects if obj.row_index not in linked]
        created = create_tasks(storage, link_class, missing, progress, {record.key: etag}, started)
        progress.created += len(created)
        progress.task_ids_for_webhook.extend(created)
        if file.problems.count:
            partial[record.key] = file
            for problem in file.problems.report():
                progress.error(f"{record.key}: {problem}")
        else:
            record.delete()


def _record_partial_files(storage, partial: dict[str, TaskFile], etags: dict) -> None:
    from .models import CortxTaskFileProblem

    for key, file in partial.items():
        CortxTaskFileProblem.objects.update_or_create(
            storage=storage, key=key, defaults={"etag": etags.get(key), "problems": file.problems.report()}
        )


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
            partial: dict[str, TaskFile] = {}
            objects = _read_new_objects(storage, new_entries, pool, progress, partial)
            etags = {entry["Key"]: entry.get("ETag") for entry in entries}
            created = create_tasks(storage, link_class, objects, progress, etags, started)
            progress.created += len(created)
            progress.task_ids_for_webhook.extend(created)
            if existing and not storage.use_blob_urls:
                _revisit_partial_files(
                    storage, link_class, [e for e in entries if e["Key"] in existing], progress, started, partial
                )
            if partial:
                _record_partial_files(storage, partial, etags)
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
