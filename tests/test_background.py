"""Syncs never block the request: a background thread without Redis, an RQ worker with it.

These tests commit their data (transactional_db) because the sync runs on another connection.
"""

from __future__ import annotations

import time

import pytest

from tests.storage_helpers import create_storage, new_bucket, plugin_env, seed_objects


def _source(project, endpoint, bucket, **fields):
    from label_studio_cortx.models import CortxImportStorage

    return create_storage(CortxImportStorage, project, endpoint, bucket, use_blob_urls=True, **fields)


def _target(project, endpoint, bucket, **fields):
    from label_studio_cortx.models import CortxExportStorage

    return create_storage(CortxExportStorage, project, endpoint, bucket, **fields)


def _in_background(settings, endpoint, wait_seconds: float) -> None:
    """No Redis: syncs go to a server thread; the request waits ``wait_seconds`` for them."""
    settings.CORTX_TRUSTED_ENDPOINTS = [endpoint.url]
    settings.CORTX_SYNC_IN_BACKGROUND = True
    settings.CORTX_SYNC_WAIT_SECONDS = wait_seconds


def _wait_done(storage, timeout=120):
    deadline = time.monotonic() + timeout
    seen = set()
    while time.monotonic() < deadline:
        storage.refresh_from_db()
        seen.add(storage.status)
        if storage.status in ("completed", "completed_with_errors", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"sync did not finish: {storage.status}")


@pytest.mark.django_db(transaction=True)
def test_sync_request_returns_while_a_large_sync_goes_on_in_a_thread(api, project, s3_http, settings):
    _in_background(settings, s3_http, wait_seconds=0)
    settings.STORAGE_IN_PROGRESS_TIMER = 0.0  # progress on every page
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 3000)
    storage = _source(project, s3_http, bucket)
    api.get("/api/storages/types")  # the first request of a process imports the URL conf: not timed
    response = api.post(f"/api/storages/cortx/{storage.id}/sync")
    assert response.status_code == 200
    # The request answered while the sync was still going: it did not wait for the 3,000 objects.
    assert response.json()["status"] in ("queued", "in_progress")
    statuses = _wait_done(storage)
    assert "in_progress" in statuses
    assert storage.status == "completed", storage.traceback
    assert project.tasks.count() == 3000


@pytest.mark.django_db(transaction=True)
def test_small_sync_answers_with_its_final_status(api, project, s3_http, settings):
    _in_background(settings, s3_http, wait_seconds=30)
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 3)
    storage = _source(project, s3_http, bucket)
    assert api.post(f"/api/storages/cortx/{storage.id}/sync").json()["status"] == "completed"


@pytest.mark.django_db(transaction=True)
def test_target_sync_goes_on_in_a_thread_and_writes_every_annotation(api, project, s3_http, settings):
    from tasks.models import Annotation, Task

    from tests.storage_helpers import keys

    _in_background(settings, s3_http, wait_seconds=0)
    bucket = new_bucket(s3_http)
    tasks = Task.objects.bulk_create(
        [Task(project=project, data={"image": f"s3://{bucket}/{i}.jpg"}) for i in range(300)]
    )
    # bulk_create sends no post_save: nothing is exported before the sync.
    annotations = Annotation.objects.bulk_create([Annotation(task=task, project=project, result=[]) for task in tasks])
    target = _target(project, s3_http, bucket, prefix="annotations")
    response = api.post(f"/api/storages/export/cortx/{target.id}/sync")
    assert response.status_code == 200, response.content
    assert response.json()["status"] in ("queued", "in_progress")
    _wait_done(target)
    assert target.status == "completed", target.traceback
    expected = sorted(f"annotations/{a.pk}" for a in Annotation.objects.filter(project=project))
    assert len(expected) == len(annotations) and keys(s3_http, bucket, "annotations/") == expected

    settings.CORTX_SYNC_WAIT_SECONDS = 30  # a short sync answers with its final status
    assert api.post(f"/api/storages/export/cortx/{target.id}/sync").json()["status"] == "completed"


@pytest.fixture
def redis_url():
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (make test starts it)")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def rq_queues(settings, redis_url, monkeypatch):
    """Label Studio with Redis on: the queues on ``redis_url``, as CORTX_REDIS_URL sets them up.

    django_rq reads RQ_QUEUES once, at import, so its copy is replaced too.
    """
    import core.redis
    import django_rq
    import django_rq.settings

    queues = {name: {**queue, "URL": redis_url} for name, queue in settings.RQ_QUEUES.items()}
    settings.REDIS_ENABLED = True
    settings.RQ_QUEUES = queues
    monkeypatch.setattr(django_rq.settings, "QUEUES", queues)
    monkeypatch.setattr(core.redis, "_redis", django_rq.get_connection("default"))
    return queues


@pytest.mark.django_db(transaction=True)
def test_sync_runs_on_an_rq_worker_when_redis_is_configured(api, project, s3_http, settings, rq_queues):
    import django_rq
    from rq import SimpleWorker

    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 25)
    storage = _source(project, s3_http, bucket)

    response = api.post(f"/api/storages/cortx/{storage.id}/sync")
    assert response.json()["status"] == "queued" and project.tasks.count() == 0
    queue = django_rq.get_queue("low")
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    storage.refresh_from_db()
    assert storage.status == "completed" and project.tasks.count() == 25


def _worker_env(settings, redis_url: str, endpoint) -> dict:
    """The environment an admin gives a worker: the plugin's settings module and this test's database."""
    return plugin_env(settings, CORTX_REDIS_URL=redis_url, CORTX_TRUSTED_ENDPOINTS=endpoint.url)


@pytest.mark.django_db(transaction=True)
def test_a_separate_rqworker_process_runs_syncs_and_exports(api, project, s3_http, settings, redis_url, rq_queues):
    """The README's worker command, as its own process: it syncs a source and exports a saved annotation."""
    import subprocess
    import sys

    from tasks.models import Task

    from tests.storage_helpers import keys, read_json

    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 40, prefix="images/")
    source = _source(project, s3_http, bucket, prefix="images/")
    _target(project, s3_http, bucket, prefix="annotations")
    task = Task.objects.create(project=project, data={"image": f"s3://{bucket}/images/00000.jpg"})

    assert api.post(f"/api/storages/cortx/{source.id}/sync").json()["status"] == "queued"
    result = [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Cat"]},
        }
    ]
    annotation = api.post(f"/api/tasks/{task.id}/annotations/", {"result": result}, format="json")
    assert annotation.status_code == 201, annotation.content
    # Nothing ran in this process: both jobs wait on the queues.
    assert project.tasks.count() == 1 and keys(s3_http, bucket, "annotations/") == []

    worker = subprocess.run(
        [sys.executable, "-m", "label_studio.manage", "rqworker", "low", "default", "--burst"],
        env=_worker_env(settings, redis_url, s3_http),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    source.refresh_from_db()
    assert source.status == "completed", (source.status, source.traceback)
    assert project.tasks.count() == 41
    annotation_id = annotation.json()["id"]
    assert keys(s3_http, bucket, "annotations/") == [f"annotations/{annotation_id}"]
    assert read_json(s3_http, bucket, f"annotations/{annotation_id}")["result"] == result
    assert s3_http.secret_key not in worker.stdout + worker.stderr
