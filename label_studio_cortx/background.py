"""Where work that talks to the store runs: an RQ worker when Redis is configured, else a thread of the server.

Syncs (source and target, snapshots included) and save-time exports never run in a user's request: a slow
or hung store must never hold an annotator's save or a gateway's timeout.

Label Studio's open-source settings run a sync inside the HTTP request, which times out on large
buckets and large projects (a target's sync uploads every annotation, or a whole snapshot). Here the
request only queues the sync; it waits a few seconds (CORTX_SYNC_WAIT_SECONDS) so that small syncs
still answer with their final status, and larger ones go on in the background while the storage
card shows their progress.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable

from core.redis import redis_connected, start_job_async_or_sync
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from io_storages.base_models import import_sync_background, storage_background_failure
from webhooks.models import Webhook
from webhooks.utils import run_webhook_sync

from . import conf

logger = logging.getLogger(__name__)


def start_sync(
    storage, job: Callable = import_sync_background, *args, wait: float | None = None, check: bool = False
) -> None:
    """Queue a sync of ``storage``: ``job(storage_class, storage_id, *args)`` is one of Label Studio's sync jobs
    (import, or export of all / only new annotations) or a snapshot, with Label Studio's own bookkeeping and
    statuses. Without Redis the request waits ``wait`` seconds (default CORTX_SYNC_WAIT_SECONDS) for it.
    ``check``: the job checks the connection first (:func:`checked_sync`)."""
    if check:
        job, args = checked_sync, (job, *args)
    if redis_connected():
        if not storage.info_set_queued():
            return
        rq_job = start_job_async_or_sync(
            job,
            storage.__class__,
            storage.id,
            *args,
            queue_name="low",
            meta={"project": storage.project_id, "storage": storage.id},
            project_id=storage.project_id,
            organization_id=storage.project.organization_id,
            on_failure=storage_background_failure,
            job_timeout=settings.RQ_LONG_JOB_TIMEOUT,
        )
        storage.info_set_job(rq_job.id)
        return
    release_if_orphaned(storage)
    if not storage.info_set_queued():
        return
    storage.meta["cortx_runner"] = RUNNER
    storage.save(update_fields=["meta"])
    if not conf.sync_in_background():
        _run(job, storage.__class__, storage.id, *args)
        return
    thread = threading.Thread(
        target=_run_in_thread,
        args=(job, storage.__class__, storage.id, *args),
        name=f"cortx-sync-{storage.__class__.__name__}-{storage.id}",
        daemon=True,
    )
    thread.start()
    thread.join(conf.sync_wait_seconds() if wait is None else wait)


def sync_now(storage, job: Callable = import_sync_background, *args, check: bool = False) -> bool:
    """Run a sync of ``storage`` in this process, now (the ``cortx_sync`` command): claimed like every other
    sync, so it never runs beside one of another process. False when a sync of it is already queued or running."""
    if check:
        job, args = checked_sync, (job, *args)
    release_if_orphaned(storage)
    if not storage.info_set_queued():
        return False
    storage.meta["cortx_runner"] = RUNNER
    storage.save(update_fields=["meta"])
    _run(job, storage.__class__, storage.id, *args)
    return True


# --- sync jobs -----------------------------------------------------------------------------------
# Label Studio's Sync button checks the connection inside the request before it queues the sync; against a
# hung store that check holds the request for connect/read timeouts x retries. checked_sync runs the same
# check first, where the sync runs: a failed check is the sync's failure, with the check's message, and is
# marked in the storage's meta so that a request still waiting for it can answer 400 as Label Studio would.
CHECK_FAILED = "connection_check_failed"


def checked_sync(storage_class, storage_id: int, job: Callable, *args, **kwargs) -> None:
    """Check the storage's connection, then run ``job(storage_class, storage_id, *args)``.

    The storage class and id stay the first two arguments: Label Studio's RQ failure handler reads them there.
    """
    storage = storage_class.objects.get(id=storage_id)
    try:
        storage.validate_connection()
    except Exception:
        storage.meta[CHECK_FAILED] = True
        storage.save(update_fields=["meta"])
        raise
    job(storage_class, storage_id, *args, **kwargs)


def check_failed(storage) -> bool:
    """True when the storage's last sync failed in its connection check (not later, in the sync itself)."""
    return storage.status == storage.Status.FAILED and bool((storage.meta or {}).get(CHECK_FAILED))


# Which process runs a thread-mode sync: a sync whose process has gone (a restart) holds its storage's
# QUEUED/IN_PROGRESS status for ever, and Label Studio then refuses every new sync of it.
RUNNER = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"


def _runner_alive(runner: str) -> bool:
    host, _, rest = runner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: not ours to judge
    if runner == RUNNER:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The pid is alive, but it may be a new process that got the same number after a restart.
    return int(pid) != os.getpid()


def release_if_orphaned(storage) -> None:
    runner = (storage.meta or {}).get("cortx_runner")
    if storage.status not in (storage.Status.QUEUED, storage.Status.IN_PROGRESS) or not runner:
        return
    if _runner_alive(runner):
        return
    logger.warning("CORTX storage %s: its last sync ended with the process that ran it; released", storage.pk)
    storage.status = storage.Status.FAILED
    storage.traceback = "The server stopped while this sync was running. Run it again."
    storage.save(update_fields=["status", "traceback"])


def _run(job: Callable, storage_class, storage_id: int, *args) -> None:
    try:
        job(storage_class, storage_id, *args)
    except Exception:
        logger.info("CORTX storage %s: sync failed", storage_id, exc_info=True)
        storage = storage_class.objects.filter(pk=storage_id).first()
        if storage is not None:
            storage_background_failure(storage)


def _run_in_thread(job: Callable, storage_class, storage_id: int, *args) -> None:
    try:
        _run(job, storage_class, storage_id, *args)
    finally:
        # This thread's database connection is its own: close it rather than leak it.
        connection.close()


# --- save-time jobs ------------------------------------------------------------------------------
def run_soon(func: Callable, *args) -> None:
    """Run a save-time job (export or delete of one annotation's objects) outside the request, once the
    request's transaction has committed (the job must see the annotation it writes).

    With Redis: an RQ job on the ``default`` queue. Without: this process's bounded worker (or inline, where
    CORTX_EXPORT_IN_BACKGROUND is off); when its queue is full the job is dropped with a warning: nothing is
    lost, since an annotation without an up-to-date export link is written by the target's next sync.
    """
    if redis_connected():
        transaction.on_commit(lambda: start_job_async_or_sync(func, *args, queue_name="default"))
        return
    if not conf.export_in_background():
        func(*args)
        return
    transaction.on_commit(lambda: save_time_worker().submit(func, *args))


class BoundedWorker:
    """One daemon thread working through a bounded queue of jobs; started on first use in each process."""

    def __init__(self, name: str, size: int, when_full: str) -> None:
        self.name = name
        self.when_full = when_full  # what happens to a job refused because the queue is full
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, func: Callable, *args) -> bool:
        self._ensure_thread()
        try:
            self._queue.put_nowait((func, args))
            return True
        except queue.Full:
            logger.warning(
                "CORTX %s queue is full (%d jobs): %s%r %s",
                self.name,
                self._queue.maxsize,
                getattr(func, "__name__", func),
                args,
                self.when_full,
            )
            return False

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted job has finished (for tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"cortx-{self.name}", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            func, args = self._queue.get()
            try:
                func(*args)
            except Exception:
                logger.warning("CORTX %s job %s failed", self.name, getattr(func, "__name__", func), exc_info=True)
            finally:
                self._queue.task_done()
                if self._queue.empty():
                    # Idle: give the connection back rather than hold it open between bursts.
                    connection.close()


_workers: dict[int, BoundedWorker] = {}
_workers_lock = threading.Lock()


def save_time_worker() -> BoundedWorker:
    """This process's save-time export worker."""
    # One per process: a pre-forking server (uwsgi, gunicorn) must not share the parent's queue or thread.
    pid = os.getpid()
    with _workers_lock:
        if pid not in _workers:
            _workers.clear()
            _workers[pid] = BoundedWorker(
                "save-time export",
                conf.export_queue_size(),
                "left for the next target sync (CORTX_EXPORT_QUEUE_SIZE sets the queue's size)",
            )
        return _workers[pid]


# --- the end of a sync: Label Studio's webhooks -----------------------------------------------------------------
# Label Studio's webhook actions are a fixed list (webhooks.models.WebhookAction, also the choices of a database
# column): a new action would need a migration of Label Studio's own app. Webhooks that "send for all actions"
# (Webhook.send_for_all_actions) take any action name, so the sync's end goes to those, of the storage's project
# and of its organization, with this action name.
SYNC_FINISHED = "CORTX_STORAGE_SYNC_FINISHED"
MAX_ERROR_SUMMARY = 2000


def sync_finished_payload(storage) -> dict:
    meta = storage.meta or {}
    target = storage.__class__.__name__ == "CortxExportStorage"
    counts = {
        name: meta[name]
        for name in (
            "tasks_existed", "tasks_updated", "tasks_removed", "tasks_missing_kept", "events_applied", "errors",
        )
        if name in meta
    }  # fmt: skip
    counts["tasks_created" if not target else "annotations_written"] = storage.last_sync_count or 0
    summary = None
    if storage.status != storage.Status.COMPLETED and storage.traceback:
        summary = storage.traceback.strip()[-MAX_ERROR_SUMMARY:]
    return {
        "storage": {
            "id": storage.pk,
            "type": "cortx",
            "kind": "target" if target else "source",
            "title": storage.title,
            "bucket": storage.bucket,
            "prefix": storage.prefix,
        },
        "project": {"id": storage.project_id, "title": storage.project.title},
        "status": storage.status,
        "trigger": meta.get("trigger", "manual"),
        "counts": counts,
        "error_summary": summary,
        "duration": meta.get("duration"),
        "finished_at": str(meta.get("time_completed") or meta.get("time_failure") or ""),
    }


def notify_sync_finished(storage) -> None:
    """Send the sync's end to the project's and organization's webhooks that send all actions. Never raises: a
    receiver that is down must not turn a finished sync into a failed one."""
    try:
        project = storage.project
        hooks = Webhook.objects.filter(
            Q(project=project) | Q(project__isnull=True),
            organization_id=project.organization_id,
            is_active=True,
            send_for_all_actions=True,
        )
        if not hooks.exists():
            return
        payload = sync_finished_payload(storage)
        for hook in hooks:
            run_webhook_sync(hook, SYNC_FINISHED, payload)
    except Exception:
        logger.warning("CORTX storage %s: the sync-finished webhook failed", storage.pk, exc_info=True)
