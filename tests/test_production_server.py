"""The production set-up the README documents: gunicorn (label_studio_cortx.wsgi, several worker processes), Redis,
and a separate RQ worker process, all with the plugin's settings module and one SQLite database.

A source sync and a save-time export both run on the RQ worker; media streams through the CORTX proxy of a
gunicorn worker (for an API token through /tasks/<id>/resolve/, for a logged-in browser as a media link), and a
repeat view of an unchanged image is answered 304 (the store's conditional GET). The whole
set-up runs against each store of the storage suite (``store``: moto, SeaweedFS, Ceph RGW, CORTX profile).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis
import requests

from label_studio_cortx.devservers.ls_server import server_env, start_label_studio

from .storage_helpers import keys, new_bucket, put, read_json

TOKEN = "production-server-token-1"
EMAIL = "admin@example.com"
PASSWORD = "admin-pass-123"
REDIS_URL = "redis://127.0.0.1:6379/14"
LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<Choices name="c" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices></View>'
)
RESULT = [{"from_name": "c", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}]
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 200


@pytest.fixture
def redis_db():
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379 (make test starts it)")
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()


def _rqworker(data_dir, s3) -> subprocess.CompletedProcess:
    """`python -m label_studio.manage rqworker low default --burst`, as the README's worker command."""
    env = server_env(
        data_dir,
        username=EMAIL,
        password=PASSWORD,
        trusted_endpoints=[s3.url],
        extra_env={"DJANGO_SETTINGS_MODULE": "label_studio_cortx.settings", "CORTX_REDIS_URL": REDIS_URL},
    )
    return subprocess.run(
        [sys.executable, "-m", "label_studio.manage", "rqworker", "low", "default", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_gunicorn_with_redis_and_an_rq_worker_syncs_exports_and_proxies_media(store, tmp_path, redis_db):
    """On every store of the storage suite: moto, SeaweedFS, Ceph RGW and the CORTX profile over Ceph RGW."""
    s3 = store.endpoint
    bucket = new_bucket(s3)
    put(s3, bucket, "images/cat.png", IMAGE, content_type="image/png")
    data_dir = tmp_path / "ls"
    common = {
        "data_dir": data_dir,
        "username": EMAIL,
        "password": PASSWORD,
        "token": TOKEN,
        "trusted_endpoints": [s3.url],
        "extra_env": {"CORTX_REDIS_URL": REDIS_URL},
    }
    # The first start sets the data directory up (migrations, the user and its token), as an admin's first run.
    start_label_studio(**common).stop()

    with start_label_studio(**common, gunicorn_workers=2) as server:
        assert "Booting worker" in server.log_tail(200)
        api = server.api()
        project = api.post("/api/projects", json={"title": "Production", "label_config": LABEL_CONFIG}).json()
        connection = {
            "project": project["id"],
            "bucket": bucket,
            "s3_endpoint": s3.url,
            "aws_access_key_id": s3.access_key,
            "aws_secret_access_key": s3.secret_key,
        }
        source = api.post(
            "/api/storages/cortx", json={**connection, "title": "images", "prefix": "images", "use_blob_urls": True}
        ).json()
        api.post("/api/storages/export/cortx", json={**connection, "title": "annotations", "prefix": "annotations"})

        # With Redis the web process only queues: the worker process runs the sync.
        assert api.post(f"/api/storages/cortx/{source['id']}/sync").json()["status"] == "queued"
        worker = _rqworker(data_dir, s3)
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert api.get(f"/api/storages/cortx/{source['id']}").json()["status"] == "completed"
        (task,) = api.get(f"/api/tasks?project={project['id']}").json()["tasks"]

        # Media through a gunicorn worker's CORTX proxy; the repeat view is a 304 from the store's ETag. The API
        # token's request is dispatched in front of the middleware that is for browsers (LocaleMiddleware would
        # have added Content-Language), although the client's cookie jar sends the session cookie Label Studio set.
        url = task["data"]["image"]
        assert "/resolve/" in url
        first = api.get(url)
        assert first.status_code == 200 and first.content == IMAGE
        assert api.session.cookies and "Content-Language" not in first.headers and first.headers["Referrer-Policy"]
        csp = "Content-Security-Policy-Report-Only"  # Label Studio's policy, built once on this path: the same header
        assert first.headers[csp] and first.headers[csp] == api.get(f"/api/tasks/{task['id']}").headers[csp]
        again = api.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.content == b""

        # A logged-in browser gets a media link instead, served by the gunicorn worker in front of Label Studio's
        # middleware (whose SecurityMiddleware would have added Referrer-Policy), with the same 304.
        browser = server.browser()
        link = browser.get(f"{server.url}/api/tasks/{task['id']}").json()["data"]["image"]
        assert link.startswith("/cortx/media/"), link
        first = browser.get(server.url + link)
        assert first.status_code == 200 and first.content == IMAGE and "Referrer-Policy" not in first.headers
        again = browser.get(server.url + link, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.content == b""
        assert requests.get(server.url + link, timeout=30).status_code in (401, 403)  # no session: Label Studio's

        # A save queues its export on the default queue; the worker writes it to the target bucket.
        annotation = api.post(f"/api/tasks/{task['id']}/annotations/", json={"result": RESULT}).json()
        deadline = time.monotonic() + 60
        while not redis.Redis.from_url(REDIS_URL).llen("rq:queue:default") and time.monotonic() < deadline:
            time.sleep(0.5)
        worker = _rqworker(data_dir, s3)
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert keys(s3, bucket, "annotations/") == [f"annotations/{annotation['id']}"]
        assert read_json(s3, bucket, f"annotations/{annotation['id']}")["result"] == RESULT
        assert s3.secret_key not in worker.stdout + worker.stderr + server.log_tail(2000)


@pytest.mark.parametrize("value, expected", [("60", "60 True"), ("", "0 False")])
def test_the_production_server_keeps_database_connections(tmp_path, value, expected):
    """CORTX_DB_CONN_MAX_AGE (the README's production server sets 60) becomes Django's persistent connections with
    health checks; unset, Label Studio's connection per request stays."""
    env = server_env(tmp_path, username=EMAIL, password=PASSWORD, token=None, trusted_endpoints=(), extra_env={})
    env.update({"DJANGO_SETTINGS_MODULE": "label_studio_cortx.settings", "CORTX_DB_CONN_MAX_AGE": value})
    code = (
        "from django.conf import settings; db = settings.DATABASES['default']; "
        "print(db.get('CONN_MAX_AGE', 0), db.get('CONN_HEALTH_CHECKS', False))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == expected
