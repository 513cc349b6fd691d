"""Creating tasks and their links in bulk, one transaction per batch, with Label Studio's inner ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from io_storages.utils import StorageObject
from projects.models import Project
from tasks.models import Task

from .. import rows
from ..connection.errors import MAX_REPORTED_ERRORS, CappedMessages
from .task_files import split_task


@dataclass
class SyncProgress:
    created: int = 0
    existed: int = 0
    errors: CappedMessages = field(default_factory=lambda: CappedMessages(MAX_REPORTED_ERRORS))
    task_ids_for_webhook: list[int] = field(default_factory=list)
    updated: int = 0
    removed: int = 0
    kept_missing: int = 0

    first_task_id: int | None = None  # the smallest task id this sync created (ids only grow)

    def error(self, message: str) -> None:
        self.errors.add(message)

    def add_created(self, task_ids: list[int]) -> None:
        """Count tasks this sync created and queue them for the TASKS_CREATED webhook."""
        if task_ids:
            self.created += len(task_ids)
            self.task_ids_for_webhook.extend(task_ids)
            lowest = min(task_ids)
            self.first_task_id = lowest if self.first_task_id is None else min(self.first_task_id, lowest)

    def relisting(self, keys_linked: int) -> None:
        """The listing starts again from the beginning: the keys this sync linked (``keys_linked``) will be
        found linked again and are not to count as existing, and every problem will be found again."""
        self.existed = -keys_linked
        self.errors = CappedMessages(MAX_REPORTED_ERRORS)

    @property
    def existed_count(self) -> int:
        # Below zero only while a second listing has not yet come back to the keys this sync linked.
        return max(0, self.existed)

    @property
    def error_count(self) -> int:
        return self.errors.count

    def report(self) -> list[str]:
        return self.errors.report()


# What a task file may write for a boolean (the spellings Label Studio's import API accepts; 1 and 0 equal True
# and False).
_TRUE = {True, "true", "True", "TRUE", "t", "T", "1", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON"}
_FALSE = {False, "false", "False", "FALSE", "f", "F", "0", "no", "No", "NO", "n", "N", "off", "Off", "OFF"}


def _boolean(value) -> bool | None:
    """A task file's boolean as True/False; None when it is none (such a task is reported, not imported)."""
    try:
        return True if value in _TRUE else False if value in _FALSE else None
    except TypeError:  # unhashable: a list or an object
        return None


def _next_inner_id(project) -> int:
    last = Task.objects.filter(project=project).order_by("-inner_id").values_list("inner_id", flat=True).first()
    return (last or 0) + 1


def create_tasks(
    storage, link_class, objects: list[StorageObject], progress: SyncProgress, etags: dict | None = None, seen=None
) -> list[int]:
    """Create tasks and links for new storage objects in one transaction; return the new task ids."""
    if not objects:
        return []
    project = storage.project
    plain: list[tuple[StorageObject, dict, dict, bool]] = []
    rich: list[StorageObject] = []
    for obj in objects:
        data, meta, needs_full_import = split_task(obj.task_data)
        allow_skip = _boolean(obj.task_data.get("allow_skip", True))
        if allow_skip is None:
            progress.error(f"{obj.key}: task {obj.row_index or 0} was not imported (allow_skip must be true or false)")
        elif needs_full_import:
            rich.append(obj)
        else:
            plain.append((obj, data, meta, allow_skip))
    with transaction.atomic():
        inner_id, task_ids = _open_page(project, len(plain))
        if rows.supported():
            created = _insert_rows(storage, link_class, plain, inner_id, task_ids, etags or {}, seen)
        else:
            created = _bulk_create(storage, link_class, plain, inner_id, etags or {}, seen)
    _count_data_columns(project, created)

    with_predictions = []
    for obj in rich:
        # Predictions and annotations need Label Studio's serializers; such tasks are rare.
        try:
            task = storage.add_task(
                project, project.maximum_annotations, _next_inner_id(project), storage, obj, link_class
            )
            with_predictions.append(task)
        except Exception as exc:
            progress.error(f"{obj.key}: task {obj.row_index or 0} was not imported ({exc})")
    _count_data_columns(project, with_predictions)
    return [task.pk for task in created + with_predictions]


def _count_data_columns(project, created: list) -> None:
    """Label Studio's Data Manager columns, from the tasks in hand (reading a page of tasks back only to count
    columns would build every one of them a second time)."""
    if created and hasattr(project, "summary"):
        project.summary.update_data_columns(created)


@dataclass
class CreatedTask:
    """What callers read of a task created as a plain row: its id and data (Label Studio's column counter reads
    ``data``)."""

    pk: int
    data: dict


def _open_page(project, count: int) -> tuple[int, list[int] | None]:
    """Lock the project row (inner ids are allocated under it, as Label Studio's importers do) and return the
    next inner id; on PostgreSQL also draw ``count`` task ids and let this transaction commit without waiting
    for the disk (``rows.RELAX_COMMIT``), all in one statement: while the listing thread parses the next page,
    every round trip to the database also waits for the GIL."""
    if connection.vendor != "postgresql":
        if connection.vendor != "sqlite":
            list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk"))
        return _next_inner_id(project), None
    quote = connection.ops.quote_name
    task_table, project_table = Task._meta.db_table, Project._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.RELAX_COMMIT}, "
            f"(SELECT MAX({quote('inner_id')}) FROM {quote(task_table)} WHERE {quote('project_id')} = %s), "
            f"ARRAY(SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)) "
            f"FROM {quote(project_table)} WHERE {quote('id')} = %s FOR UPDATE",
            [project.pk, task_table, count, project.pk],
        )
        found = cursor.fetchone()
    if found is None:
        raise Project.DoesNotExist(f"project {project.pk} was deleted during the sync")
    _, last, ids = found
    return (last or 0) + 1, ids


def _insert_rows(
    storage, link_class, plain, inner_id: int, task_ids: list[int] | None, etags: dict, seen
) -> list[CreatedTask]:
    """Tasks and links as plain rows (``rows``): the common path on PostgreSQL and SQLite."""
    if not plain:
        return []
    project = storage.project
    to_json = rows.json_text(Task, "data")
    task_ids = rows.insert(
        Task,
        ("data", "meta", "inner_id", "allow_skip"),
        [
            (to_json(data), to_json(meta) if meta else "{}", inner_id + n, allow_skip)
            for n, (_, data, meta, allow_skip) in enumerate(plain)
        ],
        {"project": project.pk, "overlap": project.maximum_annotations},
        ids=task_ids,
        returning=True,
    )
    rows.insert(
        link_class,
        ("task", "key", "row_index", "row_group", "object_etag"),
        [
            (task_id, obj.key, obj.row_index, obj.row_group, etags.get(obj.key))
            for task_id, (obj, *_) in zip(task_ids, plain, strict=True)
        ],
        {"storage": storage.pk, "seen_at": seen},
    )
    return [CreatedTask(task_id, data) for task_id, (_, data, *_) in zip(task_ids, plain, strict=True)]


def _bulk_create(storage, link_class, plain, inner_id: int, etags: dict, seen) -> list:
    """Tasks and links through Django's ``bulk_create``: databases without a plain-row path."""
    project = storage.project
    tasks = Task.objects.bulk_create(
        [
            Task(
                project=project,
                data=data,
                meta=meta,
                overlap=project.maximum_annotations,
                inner_id=inner_id + n,
                allow_skip=allow_skip,
            )
            for n, (_, data, meta, allow_skip) in enumerate(plain)
        ],
        batch_size=settings.BATCH_SIZE,
    )
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
                object_etag=etags.get(obj.key),
                seen_at=seen,
            )
            for (obj, *_), task in zip(plain, tasks, strict=True)
        ],
        batch_size=settings.BATCH_SIZE,
    )
    return list(tasks)
