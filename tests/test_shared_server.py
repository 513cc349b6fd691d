"""The shared-server guarantees through a running Label Studio (subprocess, its own SQLite, no Redis).

A fault-injecting TCP proxy of the project's own (label_studio_cortx/devservers/fault_proxy.py) sits between
Label Studio and a real moto server: a store that accepts connections and never answers must not hold an
annotator's save, a snapshot request or a Sync click, and nothing is lost: the target's next sync writes what
the hung store never received, also after a restart of the server between save and export. An extra loopback
listener that nobody trusts proves that no endpoint trick reaches it, and a pathological regex filter synced
against a long key leaves the server answering.
"""

from __future__ import annotations

import time

import pytest
import requests

from label_studio_cortx.devservers.fault_proxy import UNTRUSTED_BODY, start_fault_proxy, start_listener
from label_studio_cortx.devservers.ls_server import start_label_studio

from .storage_helpers import keys, new_bucket, put

TOKEN = "shared-server-token-123"
EMAIL = "admin@example.com"
PASSWORD = "admin-pass-123"
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'
)
RESULT = [{"from_name": "c", "to_name": "text", "type": "choices", "value": {"choices": ["a"]}}]
# Far below what the old in-request export took against a hung store (retries x read timeout, over 45 s),
# far above what a save costs on a loaded 2-core machine.
SAVE_BOUND = 15.0


@pytest.fixture(scope="module")
def store(s3_http):
    with start_fault_proxy(s3_http.host, s3_http.port) as proxy:
        yield s3_http, proxy


@pytest.fixture(autouse=True)
def _proxy_passes(store):
    """Each test starts, and leaves the proxy, forwarding."""
    store[1].mode = "pass"
    yield
    store[1].mode = "pass"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ls-shared")


def _start(data_dir, proxy):
    return start_label_studio(
        data_dir=data_dir,
        username=EMAIL,
        password=PASSWORD,
        token=TOKEN,
        trusted_endpoints=[proxy.url],
        # A short read timeout keeps the background worker's wait on the hung store short; requests never wait.
        extra_env={"CORTX_READ_TIMEOUT": "3", "CORTX_MAX_ATTEMPTS": "1"},
    )


def _timed(call, *args, **kwargs):
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def _project(api, title: str) -> dict:
    return api.post("/api/projects", json={"title": title, "label_config": LABEL_CONFIG}).json()


def _health(server) -> float:
    """Seconds /health/ took to answer (it must answer 200)."""
    response, took = _timed(requests.get, f"{server.url}/health/", timeout=10)
    assert response.status_code == 200
    return took


def _until_done(api, path: str, between=lambda: time.sleep(1), seconds: float = 120) -> dict:
    """GET the storage at ``path`` until its sync is neither queued nor in progress; calls ``between()`` meanwhile."""
    deadline = time.monotonic() + seconds
    result = api.get(path).json()
    while result["status"] in ("queued", "in_progress"):
        assert time.monotonic() < deadline, result
        between()
        result = api.get(path).json()
    return result


def test_a_hung_store_never_holds_a_save_or_a_snapshot_and_nothing_is_lost(store, data_dir):
    s3, proxy = store
    bucket = new_bucket(s3)
    with _start(data_dir, proxy) as server:
        api = server.api()
        project = _project(api, "Hung store")
        task = api.post(f"/api/projects/{project['id']}/import", json=[{"text": "one"}, {"text": "two"}])
        tasks = api.get(f"/api/tasks?project={project['id']}&resolve_uri=false").json()["tasks"]
        assert task.status_code == 201 and len(tasks) == 2

        # The cost of a save with no target storage, measured on this machine now.
        _, plain = _timed(api.post, f"/api/tasks/{tasks[0]['id']}/annotations/", json={"result": RESULT})

        target = api.post(
            "/api/storages/export/cortx",
            json={
                "project": project["id"],
                "title": "hung",
                "bucket": bucket,
                "prefix": "ann",
                "s3_endpoint": proxy.url,
                "aws_access_key_id": s3.access_key,
                "aws_secret_access_key": s3.secret_key,
            },
        ).json()
        proxy.mode = "hang"
        response, hung = _timed(api.post, f"/api/tasks/{tasks[1]['id']}/annotations/", json={"result": RESULT})
        assert response.status_code == 201
        annotation_id = response.json()["id"]
        print(f"save without target: {plain:.2f} s; with a hung target: {hung:.2f} s")
        assert hung < SAVE_BOUND

        snapshot, took = _timed(
            api.post, f"/api/storages/export/cortx/{target['id']}/snapshot", json={"export_format": "JSON"}
        )
        assert snapshot.status_code == 202 and took < SAVE_BOUND
        assert snapshot.json()["status"] in ("queued", "in_progress", "failed")
        assert server.running()

    # Restart between the save and its export: the target's next sync writes what never reached the store.
    proxy.mode = "pass"
    with _start(data_dir, proxy) as server:
        api = server.api()
        # The snapshot job died with the old process; the next sync releases its status and runs.
        api.post(f"/api/storages/export/cortx/{target['id']}/sync")
        result = _until_done(api, f"/api/storages/export/cortx/{target['id']}")
        assert result["status"] == "completed", result
        assert f"ann/{annotation_id}" in keys(s3, bucket, "ann/")


def test_hostile_endpoints_filters_and_a_hung_store_through_a_running_server(store, data_dir):
    s3, proxy = store
    bucket = new_bucket(s3)
    with _start(data_dir, proxy) as server, start_listener() as untrusted:
        api = server.api()
        project = _project(api, "Hostile")
        base = {
            "project": project["id"],
            "bucket": bucket,
            "aws_access_key_id": s3.access_key,
            "aws_secret_access_key": s3.secret_key,
        }

        # 1. Two parsers, two hosts: urlsplit sees the trusted proxy, urllib3 would connect to the listener.
        bypass = f"http://127.0.0.1:{untrusted.port}\\@127.0.0.1:{proxy.port}"
        userinfo = f"http://admin:hunter2-pass@127.0.0.1:{proxy.port}"
        for route in ("/api/storages/cortx/validate", "/api/storages/cortx", "/api/storages/export/cortx"):
            for endpoint, why in ((bypass, "backslash"), (userinfo, "user information")):
                response = api.post(route, json={**base, "s3_endpoint": endpoint}, check=False)
                assert response.status_code == 400, (route, response.text)
                assert why in response.text and "hunter2-pass" not in response.text
                assert UNTRUSTED_BODY not in response.text
        assert untrusted.hits == 0, untrusted.requests

        # 2. A regex that backtracks exponentially elsewhere runs in linear time; one RE2 cannot run is
        # refused with the construct named.
        key = "k" * 999 + "!"
        put(s3, bucket, key, b"x")
        put(s3, bucket, "kkk", b"x")
        refused = api.post(
            "/api/storages/cortx", json={**base, "s3_endpoint": proxy.url, "regex_filter": r"(k)\1"}, check=False
        )
        assert refused.status_code == 400 and "backreference" in refused.text, refused.text
        source = api.post(
            "/api/storages/cortx",
            json={**base, "s3_endpoint": proxy.url, "regex_filter": "(k+)+$", "use_blob_urls": True},
        ).json()
        started, slowest = time.monotonic(), 0.0

        def check_health() -> None:
            nonlocal slowest
            slowest = max(slowest, _health(server))
            time.sleep(0.2)

        api.post(f"/api/storages/cortx/{source['id']}/sync")
        result = _until_done(api, f"/api/storages/cortx/{source['id']}", between=check_health, seconds=30)
        assert result["status"] == "completed", result
        print(f"regex sync: {time.monotonic() - started:.2f} s, slowest /health/ {slowest:.2f} s")
        assert slowest < SAVE_BOUND
        tasks = api.get(f"/api/tasks?project={project['id']}&resolve_uri=false").json()["tasks"]
        # Matched from the key's start, as Label Studio matches: only "kkk".
        assert [value for t in tasks for value in t["data"].values()] == [f"s3://{bucket}/kkk"]

        # 3. A Sync click against a store that never answers is answered at once, for source and target.
        target = api.post("/api/storages/export/cortx", json={**base, "s3_endpoint": proxy.url, "prefix": "out"}).json()
        proxy.mode = "hang"
        routes = (f"/api/storages/cortx/{source['id']}/sync", f"/api/storages/export/cortx/{target['id']}/sync")
        for route in routes:
            response, took = _timed(api.post, route, check=False)
            print(f"{route} on a hung store: HTTP {response.status_code} in {took:.2f} s")
            assert took < SAVE_BOUND
            if response.status_code == 400:  # the check failed within the request's short wait
                assert "did not answer" in response.text or "timed out" in response.text, response.text
            else:
                assert response.json()["status"] in ("queued", "in_progress", "failed"), response.text
            assert s3.secret_key not in response.text
        _health(server)
        assert untrusted.hits == 0
    # Userinfo never reaches the server's log either.
    assert "hunter2-pass" not in server.log_path.read_text(errors="replace")
