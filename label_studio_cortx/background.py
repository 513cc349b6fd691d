"""Where an import sync runs: an RQ worker when Redis is configured, else a thread of the server.

Label Studio's open-source settings run a sync inside the HTTP request, which times out on large
buckets. Here the request only queues the sync; it waits a few seconds (CORTX_SYNC_WAIT_SECONDS)
so that small syncs still answer with their final status, and larger ones go on in the background
while the storage card shows their progress.
"""

from __future__ import annotations

import logging
import threading

from core.redis import redis_connected, start_job_async_or_sync
from django.conf import settings
from django.db import connection
from io_storages.base_models import import_sync_background, storage_background_failure

from . import conf

logger = logging.getLogger(__name__)


def start_sync(storage) -> None:
    """Queue an import sync of ``storage`` (Label Studio's own bookkeeping and statuses)."""
    if redis_connected():
        if not storage.info_set_queued():
            return
        job = start_job_async_or_sync(
            import_sync_background,
            storage.__class__,
            storage.id,
            queue_name="low",
            meta={"project": storage.project_id, "storage": storage.id},
            project_id=storage.project_id,
            organization_id=storage.project.organization_id,
            on_failure=storage_background_failure,
            job_timeout=settings.RQ_LONG_JOB_TIMEOUT,
        )
        storage.info_set_job(job.id)
        return
    if not storage.info_set_queued():
        return
    if not conf.sync_in_background():
        _run(storage.__class__, storage.id)
        return
    thread = threading.Thread(
        target=_run_in_thread, args=(storage.__class__, storage.id), name=f"cortx-sync-{storage.id}", daemon=True
    )
    thread.start()
    thread.join(conf.sync_wait_seconds())


def _run(storage_class, storage_id: int) -> None:
    try:
        import_sync_background(storage_class, storage_id)
    except Exception:
        logger.info("CORTX storage %s: sync failed", storage_id, exc_info=True)
        storage = storage_class.objects.filter(pk=storage_id).first()
        if storage is not None:
            storage_background_failure(storage)


def _run_in_thread(storage_class, storage_id: int) -> None:
    try:
        _run(storage_class, storage_id)
    finally:
        # This thread's database connection is its own: close it rather than leak it.
        connection.close()
