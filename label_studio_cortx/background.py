"""Where a sync runs: an RQ worker when Redis is configured, else a thread of the server.

Label Studio's open-source settings run a sync inside the HTTP request, which times out on large
buckets and large projects (a target's sync uploads every annotation, or a whole snapshot). Here the
request only queues the sync; it waits a few seconds (CORTX_SYNC_WAIT_SECONDS) so that small syncs
still answer with their final status, and larger ones go on in the background while the storage
card shows their progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.redis import redis_connected, start_job_async_or_sync
from django.conf import settings
from django.db import connection
from io_storages.base_models import import_sync_background, storage_background_failure

from . import conf

logger = logging.getLogger(__name__)


def start_sync(storage, job: Callable = import_sync_background) -> None:
    """Queue a sync of ``storage``: ``job(storage_class, storage_id)`` is one of Label Studio's sync jobs
    (import, or export of all / only new annotations), with Label Studio's own bookkeeping and statuses."""
    if redis_connected():
        if not storage.info_set_queued():
            return
        rq_job = start_job_async_or_sync(
            job,
            storage.__class__,
            storage.id,
            queue_name="low",
            meta={"project": storage.project_id, "storage": storage.id},
            project_id=storage.project_id,
            organization_id=storage.project.organization_id,
            on_failure=storage_background_failure,
            job_timeout=settings.RQ_LONG_JOB_TIMEOUT,
        )
        storage.info_set_job(rq_job.id)
        return
    if not storage.info_set_queued():
        return
    if not conf.sync_in_background():
        _run(job, storage.__class__, storage.id)
        return
    thread = threading.Thread(
        target=_run_in_thread,
        args=(job, storage.__class__, storage.id),
        name=f"cortx-sync-{storage.__class__.__name__}-{storage.id}",
        daemon=True,
    )
    thread.start()
    thread.join(conf.sync_wait_seconds())


def _run(job: Callable, storage_class, storage_id: int) -> None:
    try:
        job(storage_class, storage_id)
    except Exception:
        logger.info("CORTX storage %s: sync failed", storage_id, exc_info=True)
        storage = storage_class.objects.filter(pk=storage_id).first()
        if storage is not None:
            storage_background_failure(storage)


def _run_in_thread(job: Callable, storage_class, storage_id: int) -> None:
    try:
        _run(job, storage_class, storage_id)
    finally:
        # This thread's database connection is its own: close it rather than leak it.
        connection.close()
