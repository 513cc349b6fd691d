"""Creating tasks and their links in bulk, one transaction per batch, with Label Studio's inner ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from io_storages.utils import StorageObject
from projects.models import Project
from tasks.models import Task

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

    def error(self, message: str) -> None:
        self.errors.add(message)

    @property
    def error_count(self) -> int:
        return self.errors.count

    def report(self) -> list[str]:
        return self.errors.report()


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
    with transaction.atomic():
        if connection.vendor != "sqlite":
            # Serialize inner_id allocation with Label Studio's own importers.
            Project.objects.select_for_update().filter(pk=project.pk).first()
        inner_id = _next_inner_id(project)
        plain: list[tuple[StorageObject, Task]] = []
        rich: list[StorageObject] = []
        for obj in objects:
            data, meta, needs_full_import = split_task(obj.task_data)
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
        created = list(tasks)

    for obj in rich:
        # Predictions and annotations need Label Studio's serializers; such tasks are rare.
        try:
            task = storage.add_task(
                project, project.maximum_annotations, _next_inner_id(project), storage, obj, link_class
            )
            created.append(task)
        except Exception as exc:
            progress.error(f"{obj.key}: task {obj.row_index or 0} was not imported ({exc})")
    if created and hasattr(project, "summary"):
        # The tasks in hand carry the data as stored: reading a page of tasks back only to count columns would
        # build every one of them a second time.
        project.summary.update_data_columns(created)
    return [task.pk for task in created]
