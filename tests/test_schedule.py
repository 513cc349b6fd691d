"""Scheduled syncs: the interval in the API, the scheduler thread of a web process without Redis, the claim that
keeps two syncs of one storage apart, schedules derived from the database, a store that is down when a sync
fires, the ``cortx_sync`` command run as cron runs it, and the RQ tick run by a real worker with RQ's scheduler.

Tests that run syncs commit their data (transactional_db): the scheduler and the command work on other
connections (a thread, a subprocess).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from tests.storage_helpers import create_storage, new_bucket, payload, plugin_env, put, seed_objects
from tests.test_background import redis_url, rq_queues  # noqa: F401 - fixtures shared with the RQ tests


def _source(project, endpoint, bucket, **fields):
    from label_studio_cortx.models import CortxImportStorage

    return create_storage(CortxImportStorage, project, endpoint, bucket, use_blob_urls=True, **fields)


def _target(project, endpoint, bucket, **fields):
    from label_studio_cortx.models import CortxExportStorage

    return create_storage(CortxExportStorage, project, endpoint, bucket, **fields)


class _Down:
    """An endpoint where nothing listens: a store that is down."""

    def __init__(self) -> None:
        from label_studio_cortx.devservers.moto_server import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        self.access_key, self.secret_key, self.ca_pem = "AKIADOWN", "secret-down", None


def _wait_status(storage, statuses=("completed", "completed_with_errors", "failed"), timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        storage.refresh_from_db()
        if storage.status in statuses:
            return storage.status
        time.sleep(0.05)
    raise AssertionError(f"storage {storage.pk} stayed {storage.status}")


def _make_due(storage, minutes_ago: float) -> None:
    """Move the last sync's start into the past, as time passing would (the schedule is only in the database)."""
    from django.utils import timezone

    type(storage).objects.filter(pk=storage.pk).update(sync_started_at=timezone.now() - timedelta(minutes=minutes_ago))
    storage.refresh_from_db()


# --- the API -------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_sync_interval_is_in_the_api_with_the_admins_minimum_and_next_sync_at(api, project, s3_http, settings):
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    settings.CORTX_MIN_SYNC_INTERVAL = 15
    bucket = new_bucket(s3_http)
    too_short = api.post("/api/storages/cortx/", payload(s3_http, bucket, project, sync_interval=5), format="json")
    assert too_short.status_code == 400
    assert "CORTX_MIN_SYNC_INTERVAL" in str(too_short.json()) and "15 minutes" in str(too_short.json())

    created = api.post("/api/storages/cortx/", payload(s3_http, bucket, project, sync_interval=30), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["sync_interval"] == 30
    # Never synced: due at once.
    assert body["next_sync_at"] is not None and body["sync_started_at"] is None
    assert "events_token_hash" not in body and body["events_enabled"] is False

    off = api.patch(f"/api/storages/cortx/{body['id']}", {"sync_interval": 0}, format="json")
    assert off.status_code == 200 and off.json()["next_sync_at"] is None
    # Read-only: the schedule cannot be moved through the API.
    api.patch(f"/api/storages/cortx/{body['id']}", {"sync_started_at": "2001-01-01T00:00:00Z"}, format="json")
    assert api.get(f"/api/storages/cortx/{body['id']}").json()["sync_started_at"] is None

    target = api.post("/api/storages/export/cortx", payload(s3_http, bucket, project, sync_interval=60), format="json")
    assert target.status_code == 201, target.content
    assert target.json()["sync_interval"] == 60 and target.json()["next_sync_at"]

    for path in ("/api/storages/cortx/form", "/api/storages/export/cortx/form"):
        names = [field.get("name") for row in api.get(path).json() for field in row.get("fields", [])]
        assert "sync_interval" in names


@pytest.mark.django_db
def test_next_sync_is_the_last_start_plus_the_interval_never_below_the_minimum(project, s3_http, settings):
    from label_studio_cortx import schedule

    settings.CORTX_MIN_SYNC_INTERVAL = 10
    storage = _source(project, s3_http, "any-bucket", sync_interval=60)
    _make_due(storage, minutes_ago=1)
    assert schedule.next_sync_at(storage) == storage.sync_started_at + timedelta(minutes=60)
    # A storage saved before the admin raised the minimum runs at the minimum.
    storage.sync_interval = 3
    assert schedule.next_sync_at(storage) == storage.sync_started_at + timedelta(minutes=10)
    storage.sync_interval = 0
    assert schedule.next_sync_at(storage) is None


# --- the scheduler without Redis -----------------------------------------------------------------------------
@pytest.fixture
def scheduler_thread(settings):
    """A web process's scheduler thread (no Redis), ticking fast; stopped after the test."""
    from label_studio_cortx import schedule

    settings.CORTX_SCHEDULER_TICK_SECONDS = 0.1
    settings.CORTX_SYNC_IN_BACKGROUND = True
    # Whatever an earlier test's live server started in this process is gone: this test starts its own.
    schedule.stop_thread()
    schedule._started_in.discard(os.getpid())
    yield schedule
    schedule.stop_thread()


@pytest.mark.django_db(transaction=True)
def test_the_web_process_scheduler_thread_syncs_when_due_and_again_after_a_restart(
    project, s3_http, settings, scheduler_thread
):
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.client import ClientHandler

    schedule = scheduler_thread
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    settings.CORTX_MIN_SYNC_INTERVAL = 1
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 3)
    storage = _source(project, s3_http, bucket, sync_interval=5)

    # Django's test client is no server: its requests do not start the scheduler; a WSGI server's first does.
    schedule.on_request_started(ClientHandler)
    assert os.getpid() not in schedule._threads
    schedule.on_request_started(WSGIHandler)
    assert schedule._threads[os.getpid()].thread.is_alive()

    assert _wait_status(storage) == "completed", storage.traceback
    assert project.tasks.count() == 3 and storage.meta.get("trigger") == "schedule"
    first_start = storage.sync_started_at
    assert schedule.next_sync_at(storage) == first_start + timedelta(minutes=5)

    # Not due yet: new objects wait for the next run, however many ticks pass.
    for name in ("later-1.jpg", "later-2.jpg"):
        put(s3_http, bucket, name, b"x")
    ticks = 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        schedule.tick()
        ticks += 1
    storage.refresh_from_db()
    assert ticks > 5 and storage.sync_started_at == first_start and project.tasks.count() == 3

    # A restart: the thread (and everything in memory) is gone; the schedule is in the database.
    schedule.stop_thread()
    _make_due(storage, minutes_ago=6)
    schedule._started_in.discard(os.getpid())
    schedule.on_request_started(WSGIHandler)
    deadline = time.monotonic() + 60
    while project.tasks.count() < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _wait_status(storage) == "completed"
    assert project.tasks.count() == 5
    assert schedule.next_sync_at(storage) > storage.sync_started_at


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_start_one_sync_of_a_storage(project, s3_http, settings):
    """Eight processes' ticks see the storage due at the same moment: one claims it, the others start nothing."""
    from django.db import connection

    from label_studio_cortx import schedule

    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    settings.CORTX_SYNC_IN_BACKGROUND = False  # each tick runs what it claims itself
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 20)
    storage = _source(project, s3_http, bucket, sync_interval=10)
    _make_due(storage, minutes_ago=11)
    barrier = threading.Barrier(8)
    started: list = []

    def scheduler():
        try:
            barrier.wait()
            started.extend(schedule.run_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(started) == 1
    storage.refresh_from_db()
    assert storage.status == "completed" and project.tasks.count() == 20
    assert project.tasks.count() == storage.links.count()


@pytest.mark.django_db(transaction=True)
def test_a_sync_is_never_queued_beside_one_that_is_running(project, s3_http, settings):
    from label_studio_cortx import background, schedule

    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 2)
    storage = _source(project, s3_http, bucket, sync_interval=10)
    type(storage).objects.filter(pk=storage.pk).update(status="in_progress")
    storage.refresh_from_db()
    # Manual (the Sync button's path), command-line and scheduled: none starts.
    storage.sync(check=True)
    assert background.sync_now(storage, schedule.sync_job(storage)) is False
    assert schedule.run_due() == []
    storage.refresh_from_db()
    assert storage.status == "in_progress" and project.tasks.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_store_that_is_down_fails_the_scheduled_sync_with_the_reason_and_stays_scheduled(project, settings):
    from label_studio_cortx import schedule

    down = _Down()
    settings.CORTX_TRUSTED_ENDPOINTS = [down.url]
    settings.CORTX_SYNC_IN_BACKGROUND = False
    settings.CORTX_MAX_ATTEMPTS = 1
    storage = _source(project, down, "unreachable", sync_interval=10)
    assert [s.pk for s in schedule.run_due()] == [storage.pk]
    storage.refresh_from_db()
    assert storage.status == "failed"
    assert "refused" in storage.traceback and "Traceback" not in storage.traceback
    due = schedule.next_sync_at(storage)
    assert due == storage.sync_started_at + timedelta(minutes=10)
    assert schedule.run_due() == []  # not due again yet
    _make_due(storage, minutes_ago=10.5)
    assert [s.pk for s in schedule.run_due()] == [storage.pk]  # still on the schedule: tried again
    storage.refresh_from_db()
    assert storage.status == "failed" and schedule.next_sync_at(storage) > due


# --- cortx_sync, as cron runs it -------------------------------------------------------------------------------
def _command_env(settings, extra: dict | None = None) -> dict:
    trusted = ",".join(settings.CORTX_TRUSTED_ENDPOINTS)
    return plugin_env(settings, CORTX_TRUSTED_ENDPOINTS=trusted, CORTX_MAX_ATTEMPTS="1", **(extra or {}))


def _cortx_sync(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "label_studio.manage", "cortx_sync", *args],
        env=_command_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.django_db(transaction=True)
def test_cortx_sync_command_one_line_per_storage_and_exit_status(project, s3_http, settings):
    from tasks.models import Annotation, Task

    from tests.storage_helpers import keys

    down = _Down()
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url, down.url]
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 4, prefix="images/")
    good = _source(project, s3_http, bucket, prefix="images/", title="good")
    bad = _source(project, down, "unreachable", title="down")
    target = _target(project, s3_http, bucket, prefix="annotations", title="out")
    task = Task.objects.create(project=project, data={"image": f"s3://{bucket}/images/00000.jpg"})
    annotation = Annotation.objects.bulk_create([Annotation(task=task, project=project, result=[])])[0]

    everything = _cortx_sync(settings, "--all")
    assert everything.returncode == 1, everything.stderr[-2000:]
    lines = everything.stdout.strip().splitlines()
    assert len(lines) == 3, everything.stdout
    assert lines[0].startswith(f"source storage {good.pk} (good): completed in ")
    assert lines[0].endswith("(4 tasks created, 0 existed)")
    assert lines[1].startswith(f"source storage {bad.pk} (down): failed after ") and "refused" in lines[1]
    assert lines[2].startswith(f"target storage {target.pk} (out): completed in ")
    assert f"source storage {bad.pk}" in everything.stderr and "Sync failed" in everything.stderr
    assert project.tasks.count() == 5
    assert keys(s3_http, bucket, "annotations/") == [f"annotations/{annotation.pk}"]
    assert s3_http.secret_key not in everything.stdout + everything.stderr

    again = _cortx_sync(settings, "--storage", str(good.pk))
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().endswith("(0 tasks created, 4 existed)")
    assert _cortx_sync(settings, "--project", str(project.pk), "--target").returncode == 0

    missing = _cortx_sync(settings, "--storage", str(target.pk + 1000), "--target")
    assert missing.returncode == 1 and f"no CORTX target storage with id {target.pk + 1000}" in missing.stderr

    # --due: only storages whose schedule says so.
    type(good).objects.filter(pk=good.pk).update(sync_interval=10)
    _make_due(good, minutes_ago=1)
    nothing_due = _cortx_sync(settings, "--all", "--due")
    assert nothing_due.returncode == 0 and nothing_due.stdout.strip() == ""
    _make_due(good, minutes_ago=11)
    one_due = _cortx_sync(settings, "--all", "--due")
    assert one_due.returncode == 0 and one_due.stdout.startswith(f"source storage {good.pk} (good): completed")


# --- with Redis: a real rqworker process runs RQ's scheduler and the tick --------------------------------------
@pytest.mark.django_db(transaction=True)
def test_with_redis_an_rqworker_with_rqs_scheduler_runs_the_schedule(project, s3_http, settings, redis_url, rq_queues):  # noqa: F811 - fixtures
    from django.core.handlers.wsgi import WSGIHandler

    from label_studio_cortx import schedule

    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 6)
    storage = _source(project, s3_http, bucket, sync_interval=10)

    # A web server's first request puts the first tick on RQ's schedule; with Redis no thread is started.
    schedule._started_in.discard(os.getpid())
    schedule.on_request_started(WSGIHandler)
    assert os.getpid() not in schedule._threads
    assert schedule.ensure_rq_tick() is False  # already scheduled: not twice
    assert project.tasks.count() == 0  # nothing ran in the web process

    worker = subprocess.Popen(
        [sys.executable, "-m", "label_studio.manage", "rqworker", "low", "default", "--with-scheduler"],
        env=_command_env(settings, {"CORTX_REDIS_URL": redis_url, "CORTX_SCHEDULER_TICK_SECONDS": "0.5"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_status(storage, timeout=180) == "completed", storage.traceback
        assert project.tasks.count() == 6 and storage.meta["trigger"] == "schedule"
        first = storage.sync_started_at
        # Later ticks (the job re-schedules itself) find nothing due ...
        put(s3_http, bucket, "later.jpg", b"x")
        time.sleep(3)
        storage.refresh_from_db()
        assert storage.sync_started_at == first and project.tasks.count() == 6
        # ... until the schedule says so.
        _make_due(storage, minutes_ago=11)
        deadline = time.monotonic() + 120
        while project.tasks.count() < 7 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _wait_status(storage) == "completed" and project.tasks.count() == 7
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=60)
    assert s3_http.secret_key not in stderr


# --- the end of a sync through Label Studio's webhooks ---------------------------------------------------------
@pytest.fixture
def receiver():
    """An HTTP server that records the JSON bodies POSTed to it (a webhook receiver)."""
    import http.server
    import json

    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_project_webhook_for_all_actions_hears_each_sync_end(project, s3_http, settings, receiver):
    from webhooks.models import Webhook

    from label_studio_cortx import schedule

    down = _Down()
    settings.SSRF_PROTECTION_ENABLED = False  # the receiver is on 127.0.0.1
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url, down.url]
    settings.CORTX_SYNC_IN_BACKGROUND = False
    settings.CORTX_MAX_ATTEMPTS = 1
    Webhook.objects.create(organization=project.organization, project=project, url=receiver.url,
                           send_for_all_actions=True, send_payload=True)  # fmt: skip
    # A webhook for chosen actions only does not get it (Label Studio's list has no such action).
    Webhook.objects.create(organization=project.organization, project=project, url=receiver.url + "?chosen",
                           send_for_all_actions=False)  # fmt: skip
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 3)
    good = _source(project, s3_http, bucket, sync_interval=10, title="good")
    bad = _source(project, down, "unreachable", sync_interval=10, title="down")
    schedule.run_due()
    ends = [body for body in receiver.received if body["action"] == "CORTX_STORAGE_SYNC_FINISHED"]
    by_id = {body["storage"]["id"]: body for body in ends}
    assert len(ends) == 2 and set(by_id) == {good.pk, bad.pk}
    ok = by_id[good.pk]
    assert ok["status"] == "completed" and ok["trigger"] == "schedule" and ok["error_summary"] is None
    assert ok["storage"] == {"id": good.pk, "type": "cortx", "kind": "source", "title": "good", "bucket": bucket,
                             "prefix": None}  # fmt: skip
    assert ok["counts"]["tasks_created"] == 3 and ok["counts"]["tasks_existed"] == 0
    assert ok["project"]["id"] == project.pk and ok["duration"] >= 0
    failed = by_id[bad.pk]
    assert failed["status"] == "failed" and "refused" in failed["error_summary"]
    assert "Traceback" not in failed["error_summary"] and down.secret_key not in str(failed)
