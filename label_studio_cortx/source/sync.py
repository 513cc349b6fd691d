"""The import sync: every new object of a source bucket becomes tasks, one listing page at a time.

Label Studio's own storage sync creates one task at a time (about 13 SQL statements per object).
Here a sync walks the bucket one listing page at a time and, per page, asks the database once
which keys are already linked, reads new task files concurrently, and bulk-creates the tasks and
their links. Memory stays bounded by one page, and a re-sync that finds nothing new costs one
listing pass plus one query per page.

A task file of CORTX_TASK_FILE_STREAM_BYTES or more (a JSONL of millions of rows, a JSON list of a
gigabyte) is streamed instead: its tasks are created in chunks as it is read, so memory stays bounded
by one chunk. Until it has been read to the end it is recorded as incomplete, so a sync that failed
halfway is finished by the next one, which skips the rows that already have tasks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.utils import timezone
from fsm.functions import backfill_fsm_states_for_tasks
from io_storages.utils import StorageObject
from webhooks.models import WebhookAction
from webhooks.utils import emit_webhooks_for_instance

from .. import conf, rows
from ..connection.errors import MAX_REPORTED_ERRORS, CappedMessages, StorageError, translated
from . import reconcile
from .listing import RELISTING, iter_object_pages, read_ahead
from .task_files import (
    TASK_FILE_EXTENSIONS,
    TaskFile,
    TaskFileError,
    file_tasks,
    read_task_file,
    stream_task_file,
)
from .tasks import SyncProgress, create_tasks

# Tasks created per transaction while a large task file streams.
STREAM_CHUNK_ROWS = 1000
# What a streamed file's problem record says until the file has been read to the end.
INCOMPLETE = "import not finished (the sync stopped while reading this file); the next sync goes on with it"


def read_new_objects(
    storage, entries: list[dict], pool: ThreadPoolExecutor | None, progress, partial: dict[str, TaskFile]
) -> list[StorageObject]:
    """The tasks of a page's new objects; task files read in part are added to ``partial`` by key."""
    if storage.use_blob_urls:
        return file_tasks(storage, [entry["Key"] for entry in entries])
    candidates = []
    for entry in entries:
        if entry["Key"].lower().endswith(TASK_FILE_EXTENSIONS):
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
    once changed (or never read to the end), read them again and add the rows that have no task yet."""
    by_key = {entry["Key"]: entry for entry in entries}
    known = storage.task_file_problems.filter(key__in=list(by_key))
    for record in known:
        etag = by_key[record.key].get("ETag")
        if record.etag is not None and record.etag == etag:
            for problem in record.problems:
                progress.error(f"{record.key}: {problem}")
            continue
        _import_streamed(storage, link_class, record.key, etag, progress, started)


def _import_streamed(storage, link_class, key: str, etag: str | None, progress: SyncProgress, started) -> None:
    """Create the tasks of one large task file chunk by chunk as it streams, skipping rows that have tasks.

    The file stays recorded as incomplete until its last row: a failure halfway keeps the chunks created so
    far (linked by row), and the next sync reads the file again and adds only the rows that have no task.
    """
    problems_of = storage.task_file_problems
    problems_of.update_or_create(key=key, defaults={"etag": None, "problems": [INCOMPLETE]})
    problems = CappedMessages(MAX_REPORTED_ERRORS, "more bad lines")
    rows = 0
    try:
        with translated(storage.s3_endpoint, bucket=storage.bucket, what=f"read of task file {key}"):
            body = storage.get_client().get_object(Bucket=storage.bucket, Key=key)["Body"]
        records = _read_translated(storage, key, stream_task_file(body, key, problems))
        for chunk in _chunks(records, STREAM_CHUNK_ROWS):
            rows += len(chunk)
            indexes = [obj.row_index for obj in chunk]
            linked = set(
                link_class.objects.filter(storage=storage, key=key, row_index__in=indexes).values_list(
                    "row_index", flat=True
                )
            )
            new = [obj for obj in chunk if obj.row_index not in linked]
            created = create_tasks(storage, link_class, new, progress, {key: etag}, started)
            progress.add_created(created)
            _emit_created(storage, progress)
            storage.info_update_progress(
                last_sync_count=progress.created, tasks_existed=progress.existed_count, errors=progress.error_count
            )
    except TaskFileError as exc:
        # The file itself is broken: reported until it changes, not read again meanwhile.
        progress.error(str(exc))
        problems_of.filter(key=key).update(etag=etag, problems=[exc.reason, *problems.report()])
        return
    except StorageError as exc:
        # The store failed: the record stays "incomplete" and the next sync goes on with this file.
        progress.error(f"{key}: {exc}")
        return
    if not rows and problems.count:
        progress.error(f"{key}: no line is a valid task: " + "; ".join(problems.report()[:3]))
    for problem in problems.report():
        progress.error(f"{key}: {problem}")
    if problems.count:
        problems_of.filter(key=key).update(etag=etag, problems=problems.report())
    else:
        problems_of.filter(key=key).delete()


def _read_translated(storage, key: str, records):
    """The records of a streaming body; a failure of the store while reading becomes a StorageError (only the
    reads are translated: a failure of the database between them is not the store's)."""
    iterator = iter(records)
    while True:
        with translated(storage.s3_endpoint, bucket=storage.bucket, what=f"read of task file {key}"):
            try:
                record = next(iterator)
            except StopIteration:
                return
        yield record


def _streams(entry: dict) -> bool:
    """Whether a task file is large enough to be streamed in chunks rather than read whole."""
    return int(entry.get("Size") or 0) >= conf.task_file_stream_bytes()


def _chunks(iterable, size: int):
    """Lists of ``size`` items; when the source fails, the items read before the failure come first."""
    chunk = []
    try:
        for item in iterable:
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
    except Exception:
        if chunk:
            yield chunk
        raise
    if chunk:
        yield chunk


def _emit_created(storage, progress: SyncProgress, force: bool = False) -> None:
    """Label Studio's TASKS_CREATED webhook, in batches of WEBHOOK_BATCH_SIZE task ids."""
    if progress.task_ids_for_webhook and (force or len(progress.task_ids_for_webhook) >= settings.WEBHOOK_BATCH_SIZE):
        emit_webhooks_for_instance(
            storage.project.organization, storage.project, WebhookAction.TASKS_CREATED, progress.task_ids_for_webhook
        )
        progress.task_ids_for_webhook = []


def record_partial_files(storage, partial: dict[str, TaskFile], etags: dict) -> None:
    for key, file in partial.items():
        storage.task_file_problems.update_or_create(
            key=key, defaults={"etag": etags.get(key), "problems": file.problems.report()}
        )


def _keys_linked_since(link_class, storage, first_task_id: int | None) -> int:
    """Keys of the storage linked to tasks from ``first_task_id`` on (the ones this sync created: task ids only
    grow, and one storage syncs once at a time)."""
    if first_task_id is None:
        return 0
    links = link_class.objects.filter(storage_id=storage.pk, task_id__gte=first_task_id)
    return links.values("key").distinct().count()


def scan_and_create_links(storage, link_class) -> SyncProgress:
    """The import sync: every new object of the bucket becomes tasks, page by page."""
    storage.info_set_in_progress()
    progress = SyncProgress()
    started = timezone.now()
    pool = None if storage.use_blob_urls else ThreadPoolExecutor(max_workers=conf.read_workers())
    try:
        for entries in read_ahead(iter_object_pages(storage, ranges=conf.list_ranges())):
            if entries is RELISTING:
                progress.relisting(_keys_linked_since(link_class, storage, progress.first_task_id))
                continue
            if not entries:
                continue
            keys = [entry["Key"] for entry in entries]
            existing = rows.linked_keys(link_class, storage.pk, keys)
            progress.existed += len(existing)
            new_entries = [entry for entry in entries if entry["Key"] not in existing]
            large = [] if storage.use_blob_urls else [e for e in new_entries if _streams(e)]
            partial: dict[str, TaskFile] = {}
            objects = read_new_objects(storage, [e for e in new_entries if e not in large], pool, progress, partial)
            etags = {entry["Key"]: entry.get("ETag") for entry in entries}
            created = create_tasks(storage, link_class, objects, progress, etags, started)
            progress.add_created(created)
            for entry in large:
                _import_streamed(storage, link_class, entry["Key"], entry.get("ETag"), progress, started)
            if existing and not storage.use_blob_urls:
                _revisit_partial_files(
                    storage, link_class, [e for e in entries if e["Key"] in existing], progress, started, partial
                )
            if partial:
                record_partial_files(storage, partial, etags)
            _emit_created(storage, progress)
            if storage.sync_remove_missing or storage.sync_update_changed:
                reconcile.mark_seen(storage, link_class, entries, started, progress)
            storage.info_update_progress(
                last_sync_count=progress.created, tasks_existed=progress.existed_count, errors=progress.error_count
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=True)

    if storage.sync_remove_missing:
        reconcile.remove_missing(storage, link_class, started, progress)
    counts = {"tasks_existed": progress.existed_count}
    if storage.sync_update_changed:
        counts["tasks_updated"] = progress.updated
    if storage.sync_remove_missing:
        counts.update(tasks_removed=progress.removed, tasks_missing_kept=progress.kept_missing)
    return finish(storage, link_class, progress, counts)


def finish(storage, link_class, progress: SyncProgress, counts: dict) -> SyncProgress:
    """The end of a sync (a full one or a batch of bucket events): the last TASKS_CREATED webhook, Label Studio's
    FSM states and task counters, and the final status with ``counts`` in the storage's meta."""
    _emit_created(storage, progress, force=True)
    backfill_fsm_states_for_tasks(storage.id, progress.created, link_class)
    storage.project.update_tasks_states(
        maximum_annotations_changed=False, overlap_cohort_percentage_changed=False, tasks_number_changed=True
    )
    if progress.error_count:
        storage.info_set_completed_with_errors(
            last_sync_count=progress.created, validation_errors=progress.report(), errors=progress.error_count, **counts
        )
    else:
        storage.info_set_completed(last_sync_count=progress.created, **counts)
    return progress
