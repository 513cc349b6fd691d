"""Optional re-sync reconciliation: tasks whose objects are gone, and tasks whose JSON file changed.

Both are off by default. Tasks that have annotations are never changed or removed unless the
storage says so (``sync_touch_annotated``); their links are marked ``object_exists=False`` instead.
Removal only runs after a complete listing pass, so a failed listing never deletes anything.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from tasks.models import Task

from .task_files import TaskFileError, read_task_data, split_task
from .tasks import create_tasks

logger = logging.getLogger(__name__)


def mark_seen(storage, link_class, entries: list[dict], started, progress) -> None:
    """Stamp the links of one listing page as seen; update tasks of task files whose ETag changed."""
    keys = [entry["Key"] for entry in entries]
    links = link_class.objects.filter(storage=storage, key__in=keys)
    if storage.sync_update_changed and not storage.use_blob_urls:
        etags = {entry["Key"]: entry.get("ETag") for entry in entries}
        known = dict(links.exclude(seen_at=started).values_list("key", "object_etag").distinct())
        for key, old_etag in known.items():
            new_etag = etags.get(key)
            if old_etag and new_etag and old_etag != new_etag:
                _update_changed_file(storage, link_class, key, progress, started)
            if old_etag != new_etag:
                link_class.objects.filter(storage=storage, key=key).update(object_etag=new_etag)
    # Links this sync just created already carry the stamp.
    links.exclude(seen_at=started).update(seen_at=started, object_exists=True)


def _update_changed_file(storage, link_class, key: str, progress, started) -> None:
    try:
        objects = read_task_data(storage, key)
    except TaskFileError as exc:
        progress.error(str(exc))
        return
    by_row = {obj.row_index or 0: obj for obj in objects}
    updated = skipped = 0
    with transaction.atomic():
        for link in link_class.objects.filter(storage=storage, key=key).select_related("task"):
            obj = by_row.pop(link.row_index or 0, None)
            if obj is None:
                continue
            task = link.task
            if task.total_annotations and not storage.sync_touch_annotated:
                skipped += 1
                continue
            data, meta, _ = split_task(obj.task_data)
            if task.data != data or (meta and task.meta != meta):
                changes = {"data": data, **({"meta": meta} if meta else {})}
                Task.objects.filter(pk=task.pk).update(**changes)
                updated += 1
    created = create_tasks(storage, link_class, list(by_row.values()), progress, seen=started)
    progress.add_created(created)
    progress.updated += updated
    if skipped:
        progress.error(f"{key}: changed, but {skipped} task(s) with annotations were left as they are")


def remove_missing(storage, link_class, started, progress) -> None:
    """After a full listing: delete tasks whose objects are gone (or only mark annotated ones)."""
    missing = link_class.objects.filter(storage=storage).filter(Q(seen_at__lt=started) | Q(seen_at__isnull=True))
    if storage.sync_touch_annotated:
        removable, kept = missing, link_class.objects.none()
    else:
        removable = missing.filter(task__total_annotations=0, task__cancelled_annotations=0)
        kept = missing.exclude(pk__in=removable.values("pk"))
    kept_count = kept.update(object_exists=False)
    task_ids = list(removable.values_list("task_id", flat=True))
    for start in range(0, len(task_ids), 500):
        Task.delete_tasks_without_signals(Task.objects.filter(pk__in=task_ids[start : start + 500]))
    progress.removed = len(task_ids)
    progress.kept_missing = kept_count
    if task_ids:
        logger.info("CORTX storage %s: removed %d tasks whose objects are gone", storage.pk, len(task_ids))
