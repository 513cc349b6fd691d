"""Automatic syncs: every storage with a ``sync_interval`` is synced when it is due, and pending bucket events
are applied, by one periodic *tick* (:func:`tick`).

Where the tick runs:

- **Without Redis**, in one daemon thread of each web process, started by the process's first request
  (:func:`on_request_started`; a pre-forking server gets one per worker process).
- **With Redis**, as an RQ job on the ``low`` queue that re-schedules itself with RQ's own scheduling
  (``Queue.enqueue_in``, run by a worker started with ``--with-scheduler``; RQ 2 ships that scheduler, so no
  other library is needed). The web process's first request puts the first tick on the schedule.

A schedule lives in the database only: the next run is ``sync_started_at + interval`` (``next_sync_at``), so it
survives restarts and every process computes the same one. Several ticks may see a storage due at once (web
processes, workers, cron): each claims it with one conditional UPDATE of ``sync_started_at`` and only the one
that changed the row starts the sync; the sync itself is claimed again by ``info_set_queued`` (models.py), so a
scheduled sync never runs beside a manual, event-driven or command-line one.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta

from core.redis import redis_connected
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, transaction
from django.utils import timezone
from io_storages.base_models import export_sync_background, import_sync_background, storage_background_failure

from . import background, conf
from .models import CortxExportStorage, CortxImportStorage, CortxStorageEvent
from .source import events

logger = logging.getLogger(__name__)

BUSY = ("queued", "in_progress")
MODELS = (CortxImportStorage, CortxExportStorage)
RQ_TICK_JOB_ID = "cortx-scheduler-tick"
RQ_NEXT_TICK_KEY = "cortx-scheduler-next-tick"


def interval(storage) -> timedelta | None:
    """The storage's effective sync interval (never below CORTX_MIN_SYNC_INTERVAL), or None when it has none."""
    minutes = storage.sync_interval or 0
    if minutes <= 0:
        return None
    return timedelta(minutes=max(minutes, conf.min_sync_interval()))


def next_sync_at(storage) -> datetime | None:
    """When the storage's next scheduled sync is due: its last sync's start plus the interval (a storage that
    never synced is due at once); None without a schedule."""
    step = interval(storage)
    if step is None:
        return None
    if storage.sync_started_at is None:
        return storage.created_at or timezone.now()
    return storage.sync_started_at + step


def sync_job(storage):
    """Label Studio's job for a full sync of this kind of storage (a target with a format writes a snapshot)."""
    return import_sync_background if isinstance(storage, CortxImportStorage) else export_sync_background


def claim(storage, now: datetime) -> bool:
    """Take a due storage's scheduled run: True for exactly one of the processes that try at the same time."""
    rows = type(storage).objects.filter(pk=storage.pk).exclude(status__in=BUSY)
    if storage.sync_started_at is None:
        rows = rows.filter(sync_started_at__isnull=True)
    else:
        rows = rows.filter(sync_started_at=storage.sync_started_at)
    return rows.update(sync_started_at=now) == 1


def run_due(now: datetime | None = None) -> list:
    """Start every due scheduled sync (in the background: a thread, or the RQ ``low`` queue); the storages."""
    now = now or timezone.now()
    started = []
    for model in MODELS:
        for storage in model.objects.filter(sync_interval__gt=0).select_related("project"):
            if storage.status in BUSY:
                if not redis_connected():
                    background.release_if_orphaned(storage)
                continue
            due = next_sync_at(storage)
            if due is None or due > now or not claim(storage, now):
                continue
            logger.info("CORTX storage %s (%s): scheduled sync", storage.pk, model.__name__)
            storage.sync_trigger = "schedule"  # recorded in the storage's meta by info_set_queued
            background.start_sync(storage, sync_job(storage), wait=0, check=True)
            started.append(storage)
    return started


def tick() -> None:
    """One round of the scheduler: due syncs, then storages with bucket events waiting. Never raises."""
    try:
        run_due()
    except Exception:
        logger.exception("CORTX scheduler: starting due syncs failed")
    try:
        apply_pending_events_soon()
    except Exception:
        logger.exception("CORTX scheduler: applying bucket events failed")


# --- bucket events: queued in the database by the events endpoint, applied in batches off the request ---------
def queue_events(storage, records) -> int:
    """Store a notification's records for ``storage`` (one bulk INSERT, no store access) and have them applied
    soon, after the request's transaction commits; the number stored."""
    rows = [
        CortxStorageEvent(storage=storage, key=r.key, removed=r.removed, sequencer=r.sequencer, etag=r.etag)
        for r in records
    ]
    CortxStorageEvent.objects.bulk_create(rows, batch_size=500)
    if rows:
        transaction.on_commit(lambda: apply_events_soon(storage.pk))
    return len(rows)


_pending: set[int] = set()
_pending_lock = threading.Lock()
_event_workers: dict[int, background.BoundedWorker] = {}


def _events_worker() -> background.BoundedWorker:
    pid = os.getpid()
    with _pending_lock:
        if pid not in _event_workers:
            _event_workers.clear()
            _pending.clear()
            _event_workers[pid] = background.BoundedWorker(
                "bucket events", 10000, "left queued in the database for the scheduler's next tick"
            )
        return _event_workers[pid]


def _pending_key(storage_id: int) -> str:
    return f"cortx-events-pending-{storage_id}"


def apply_events_soon(storage_id: int) -> None:
    """Queue one job that applies a storage's pending events, unless one is already waiting: with Redis on RQ's
    ``low`` queue (a Redis key marks it waiting), else on this process's bounded worker thread."""
    if redis_connected():
        queue = _tick_queue()
        if queue.connection.set(_pending_key(storage_id), 1, nx=True, ex=3600):
            queue.enqueue(apply_events_job, CortxImportStorage, storage_id, job_timeout=3600, result_ttl=0)
        return
    worker = _events_worker()
    with _pending_lock:
        if storage_id in _pending:
            return
        _pending.add(storage_id)
    if not worker.submit(apply_events_job, CortxImportStorage, storage_id):
        with _pending_lock:
            _pending.discard(storage_id)


def apply_events_job(storage_class, storage_id: int) -> None:
    """Apply a storage's pending events as one event-driven sync: claimed like any sync (a full sync running
    now leaves them queued for the next tick), with Label Studio's statuses; failures keep them queued."""
    if redis_connected():
        _tick_queue().connection.delete(_pending_key(storage_id))
    else:
        with _pending_lock:
            _pending.discard(storage_id)
    storage = storage_class.objects.filter(pk=storage_id).select_related("project").first()
    if storage is None or not storage.pending_events.exists():
        return
    storage.sync_trigger = "events"
    if not storage.info_set_queued():
        return
    try:
        events.apply_pending(storage, storage.links.model)
    except Exception:
        logger.info("CORTX storage %s: applying bucket events failed; they stay queued", storage_id, exc_info=True)
        storage_background_failure(storage)


def apply_pending_events_soon() -> None:
    """Storages with events waiting and no sync running: apply them (events that arrived during a sync)."""
    waiting = set(CortxStorageEvent.objects.values_list("storage_id", flat=True).distinct())
    idle = CortxImportStorage.objects.filter(pk__in=waiting).exclude(status__in=BUSY).values_list("pk", flat=True)
    for storage_id in idle:
        apply_events_soon(storage_id)


# --- without Redis: one thread per web process ------------------------------------------------------------
class SchedulerThread:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="cortx-scheduler", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(conf.scheduler_tick_seconds()):
            try:
                tick()
            finally:
                # The thread's own connection: give it back between ticks rather than hold it open.
                connection.close()


_threads: dict[int, SchedulerThread] = {}
_lock = threading.Lock()


def start_thread() -> SchedulerThread | None:
    """Start this process's scheduler thread (once per process); None where it must not run (Redis, or off)."""
    if not conf.scheduler_enabled() or redis_connected():
        return None
    pid = os.getpid()
    with _lock:
        current = _threads.get(pid)
        if current is None or not current.thread.is_alive():
            _threads.clear()  # a forked child must not count its parent's thread
            current = _threads[pid] = SchedulerThread()
            current.thread.start()
        return current


def stop_thread(timeout: float = 10.0) -> None:
    with _lock:
        current = _threads.pop(os.getpid(), None)
    if current is not None:
        current.stop.set()
        current.thread.join(timeout)


# --- with Redis: a tick job that RQ's scheduler repeats -----------------------------------------------------
def _tick_queue():
    # Imported only with Redis, where django_rq's queues are configured.
    import django_rq

    return django_rq.get_queue("low")


def schedule_rq_tick(delay: float | None = None) -> None:
    """Put the next tick on RQ's schedule. Each tick is its own job (a job re-using the id of the running one
    would be deleted with it); Redis remembers the next one's id."""
    delay = conf.scheduler_tick_seconds() if delay is None else delay
    queue = _tick_queue()
    job = queue.enqueue_in(timedelta(seconds=delay), rq_tick, result_ttl=0, failure_ttl=3600)
    queue.connection.set(RQ_NEXT_TICK_KEY, job.id)


def ensure_rq_tick() -> bool:
    """Schedule a tick unless the next one is already scheduled, queued or running; True when one was scheduled."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    queue = _tick_queue()
    # Two web processes starting together: one checks and schedules.
    if not queue.connection.set(RQ_TICK_JOB_ID + "-ensure", 1, nx=True, ex=30):
        return False
    try:
        next_id = queue.connection.get(RQ_NEXT_TICK_KEY)
        status = None
        if next_id:
            try:
                status = Job.fetch(next_id.decode(), connection=queue.connection).get_status()
            except NoSuchJobError:
                status = None
        if status in ("scheduled", "queued", "started", "deferred"):
            return False
        schedule_rq_tick(0)
        return True
    finally:
        queue.connection.delete(RQ_TICK_JOB_ID + "-ensure")


def rq_tick() -> None:
    """The RQ job: the next tick on the schedule first (a tick that dies still leaves one), then this one."""
    schedule_rq_tick()
    tick()


# --- starting it: the first request of each web process -----------------------------------------------------
_started_in: set[int] = set()


def on_request_started(sender, **kwargs) -> None:
    """Connected to ``request_started`` (apps.py). Only real servers start the scheduler (WSGI or ASGI
    handlers), not Django's test client or a management command."""
    pid = os.getpid()
    if pid in _started_in or not isinstance(sender, type) or not issubclass(sender, (WSGIHandler, ASGIHandler)):
        return
    _started_in.add(pid)
    if not conf.scheduler_enabled():
        return
    try:
        if redis_connected():
            ensure_rq_tick()
        else:
            start_thread()
    except Exception:
        logger.exception("CORTX scheduler could not be started")
