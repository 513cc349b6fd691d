"""Syncs never block the request: a background thread without Redis, an RQ worker with it.

These tests commit their data (transactional_db) because the sync runs on another connection.
"""

from __future__ import annotations

import time

import pytest

from tests.storage_helpers import new_bucket, seed_objects


def _source(project, endpoint, bucket, **fields):
    from label_studio_cortx.models import CortxImportStorage

    return CortxImportStorage.objects.create(
        project=project,
        bucket=bucket,
        s3_endpoint=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        use_blob_urls=True,
        **fields,
    )


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
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    settings.CORTX_SYNC_IN_BACKGROUND = True
    settings.CORTX_SYNC_WAIT_SECONDS = 0
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
    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    settings.CORTX_SYNC_IN_BACKGROUND = True
    settings.CORTX_SYNC_WAIT_SECONDS = 30
    bucket = new_bucket(s3_http)
    seed_objects(s3_http, bucket, 3)
    storage = _source(project, s3_http, bucket)
    assert api.post(f"/api/storages/cortx/{storage.id}/sync").json()["status"] == "completed"


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


@pytest.mark.django_db(transaction=True)
def test_sync_runs_on_an_rq_worker_when_redis_is_configured(api, project, s3_http, settings, redis_url, monkeypatch):
    import django_rq
    from rq import SimpleWorker

    settings.CORTX_TRUSTED_ENDPOINTS = [s3_http.url]
    settings.REDIS_ENABLED = True
    settings.RQ_QUEUES = {name: {**queue, "URL": redis_url} for name, queue in settings.RQ_QUEUES.items()}
    import core.redis

    monkeypatch.setattr(core.redis, "_redis", django_rq.get_connection("low"))
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
