"""``cortx_sync``: sync CORTX storages from cron on a shared server (instead of, or besides, the scheduler).

    python -m label_studio.manage cortx_sync --storage 3             # source storage 3
    python -m label_studio.manage cortx_sync --storage 4 --target    # target storage 4
    python -m label_studio.manage cortx_sync --project 7             # every source and target of project 7
    python -m label_studio.manage cortx_sync --all [--due]           # every storage (--due: only scheduled, due ones)

Each sync runs in this process and is claimed like any other: a storage whose sync is already queued or running
elsewhere is skipped (and says so). One summary line per storage on stdout; exit status 1 when a sync failed
(or completed with errors), 0 otherwise.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from label_studio_cortx import background, schedule
from label_studio_cortx.models import CortxExportStorage, CortxImportStorage


class Command(BaseCommand):
    help = "Sync CORTX source and target storages now; one line per storage, exit status 1 when one failed."

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--storage", type=int, help="id of a CORTX source storage (a target with --target)")
        which.add_argument("--project", type=int, help="every CORTX storage of this project")
        which.add_argument("--all", action="store_true", help="every CORTX storage")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--target", action="store_true", help="target storages only")
        kind.add_argument("--source", action="store_true", help="source storages only")
        parser.add_argument("--due", action="store_true", help="only storages whose scheduled sync is due")

    def handle(self, *args, storage, project, all, target, source, due, **options) -> None:  # noqa: A002
        models = [CortxExportStorage] if target else [CortxImportStorage] if source or storage is not None else None
        models = models or [CortxImportStorage, CortxExportStorage]
        storages = []
        for model in models:
            rows = model.objects.select_related("project").order_by("pk")
            if storage is not None:
                rows = rows.filter(pk=storage)
            elif project is not None:
                rows = rows.filter(project_id=project)
            storages.extend(rows)
        if storage is not None and not storages:
            kind = "target" if target else "source"
            raise CommandError(f"There is no CORTX {kind} storage with id {storage}.")
        if due:
            now = timezone.now()
            storages = [s for s in storages if (at := schedule.next_sync_at(s)) is not None and at <= now]

        failed = []
        for item in storages:
            line, ok = self._sync(item)
            self.stdout.write(line)
            if not ok:
                failed.append(f"{_kind(item)} storage {item.pk}")
        if failed:
            raise CommandError("Sync failed for " + ", ".join(failed))

    def _sync(self, storage) -> tuple[str, bool]:
        name = f"{_kind(storage)} storage {storage.pk} ({storage.title or storage.bucket})"
        started = time.monotonic()
        storage.sync_trigger = "command"
        if not background.sync_now(storage, schedule.sync_job(storage), check=True):
            storage.refresh_from_db()
            return f"{name}: skipped, a sync is already {storage.status.replace('_', ' ')}", True
        storage.refresh_from_db()
        seconds = time.monotonic() - started
        meta = storage.meta or {}
        if storage.status == storage.Status.FAILED:
            reason = (storage.traceback or "unknown error").strip().splitlines()[-1][:300]
            return f"{name}: failed after {seconds:.1f} s: {reason}", False
        counts = f"{storage.last_sync_count or 0} {'tasks created' if _kind(storage) == 'source' else 'written'}"
        if "tasks_existed" in meta:
            counts += f", {meta['tasks_existed']} existed"
        if storage.status == storage.Status.COMPLETED_WITH_ERRORS:
            errors = meta.get("errors") or len((storage.traceback or "").splitlines())
            return f"{name}: completed with {errors} errors in {seconds:.1f} s ({counts})", False
        return f"{name}: {storage.status} in {seconds:.1f} s ({counts})", storage.status == storage.Status.COMPLETED


def _kind(storage) -> str:
    return "target" if isinstance(storage, CortxExportStorage) else "source"
