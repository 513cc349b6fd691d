"""A shared server under a hostile user (issue: "A shared annotation server an admin can trust"), in process.

Through Label Studio's REST API (Django test client) against real moto servers and a real loopback listener:
endpoints two parsers read differently are refused and never connected to; every socket stays on the
storage's endpoint; error texts never echo a foreign reply; filters run in linear time; storage ids in a
body are resolved with permission; every key streams. JSONL files that keep their good lines are tested on
every store in tests/test_real_stores.py. The same guarantees through a running Label Studio server
(subprocess, fault-injecting proxy) are in tests/test_shared_server.py.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from label_studio_cortx.connection import endpoints
from label_studio_cortx.devservers.fault_proxy import start_fault_proxy, start_listener

from .storage_helpers import error_text, new_bucket, payload, put
from .test_api import create_source, create_target, sync, validate

pytestmark = pytest.mark.django_db


@pytest.fixture
def trust(settings):
    def trust_endpoints(*urls):
        settings.CORTX_TRUSTED_ENDPOINTS = [getattr(url, "url", url) for url in urls]

    return trust_endpoints


@pytest.fixture
def listener():
    with start_listener() as server:
        yield server


# --- 1. one parser, and the connection pinned -------------------------------------------------------
REFUSED = {
    "http://127.0.0.1:1\\@127.0.0.1:2": "backslash",
    "http://user@s3.example.com": "user information",
    "http://user:s3cr3t@s3.example.com": "user information",
    "http://s3.example.com\t": "control characters",
    "http://s3.exa\nmple.com": "control characters",
    "http://s3%2eexample.com": "percent-encoded",
    "http://s3.example.com/bucket": "path",
    "http://s3.example.com/?x=1": "query",
    "http://s3.example.com#frag": "query or fragment",
    "ftp://s3.example.com": "scheme",
    "s3.example.com": "no scheme",
    "http://s3.example.com.": "ends with a dot",
    "http://2130706433": "IPv4",
    "http://127.1": "IPv4",
    "http://[::1": "host",
    "http://s3.example.com:99999": "port",
    "http://bücher.example": "non-ASCII",
    "http://" + "a" * 400: "longer than",
}


@pytest.mark.parametrize("url, reason", REFUSED.items(), ids=list(range(len(REFUSED))))
def test_endpoints_two_parsers_could_read_differently_are_refused(url, reason):
    with pytest.raises(endpoints.EndpointError) as caught:
        endpoints.parse(url)
    message = str(caught.value)
    assert reason in message
    assert "s3cr3t" not in message  # never echoes userinfo


def test_plain_endpoints_are_canonical():
    assert endpoints.normalize("HTTPS://S3.Example.com:443/") == "https://s3.example.com"
    assert endpoints.origin("http://[::1]:9000") == "http://[::1]:9000"
    assert endpoints.origin("http://10.0.0.5:8000/") == "http://10.0.0.5:8000"


def test_backslash_bypass_validates_nothing_and_reaches_no_untrusted_port(api, project, cortx_s3, listener, trust):
    """The attack that worked: urlsplit saw the trusted origin, urllib3 connected to the untrusted port."""
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    attack = f"http://127.0.0.1:{listener.port}\\@{cortx_s3.host}:{cortx_s3.port}"
    for target in (False, True):
        response = validate(api, payload(cortx_s3, bucket, project, s3_endpoint=attack), target=target)
        assert response.status_code == 400
        assert "backslash" in error_text(response)
    url = "/api/storages/cortx"
    response = api.post(url, payload(cortx_s3, bucket, project, s3_endpoint=attack), format="json")
    assert response.status_code == 400
    assert listener.hits == 0


def test_a_stored_endpoint_from_before_the_check_is_refused_at_connection_time(api, project, cortx_s3, listener, trust):
    from label_studio_cortx.models import CortxImportStorage

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    storage = create_source(api, cortx_s3, bucket, project)
    attack = f"http://127.0.0.1:{listener.port}\\@{cortx_s3.host}:{cortx_s3.port}"
    CortxImportStorage.objects.filter(pk=storage["id"]).update(s3_endpoint=attack)
    response = api.post(f"/api/storages/cortx/{storage['id']}/sync")
    assert response.status_code == 400 and "backslash" in error_text(response)
    assert listener.hits == 0


def test_every_connection_is_pinned_to_the_endpoint(cortx_s3, listener, settings):
    """Defence in depth: even if a request URL named another host or port, the pool refuses the socket."""
    from botocore.exceptions import BotoCoreError

    from label_studio_cortx.connection.client import ConnectionConfig, get_client

    settings.CORTX_TRUSTED_ENDPOINTS = [cortx_s3.url]
    client = get_client(
        ConnectionConfig.build(cortx_s3.url, access_key_id=cortx_s3.access_key, secret_access_key=cortx_s3.secret_key)
    )
    client.list_buckets()  # the endpoint itself works

    def elsewhere(request, **kwargs):
        request.url = request.url.replace(f":{cortx_s3.port}/", f":{listener.port}/")

    client.meta.events.register("before-send.s3.ListBuckets", elsewhere)
    try:
        with pytest.raises((BotoCoreError, endpoints.EndpointPinError)) as caught:
            client.list_buckets()
    finally:
        client.meta.events.unregister("before-send.s3.ListBuckets", elsewhere)
    from label_studio_cortx.connection.errors import describe

    assert "other than this storage's endpoint" in describe(caught.value, endpoint=cortx_s3.url)
    assert listener.hits == 0


@pytest.mark.parametrize("mode", ["garbage", "listener"])
def test_error_text_never_echoes_a_foreign_service_reply(api, project, cortx_s3, listener, trust, mode):
    bucket = new_bucket(cortx_s3)
    if mode == "garbage":
        with start_fault_proxy(cortx_s3.host, cortx_s3.port) as proxy:
            proxy.mode = "garbage"
            trust(proxy)
            response = validate(api, payload(cortx_s3, bucket, project, s3_endpoint=proxy.url))
    else:
        trust(listener.url)
        response = validate(api, payload(cortx_s3, bucket, project, s3_endpoint=listener.url))
    assert response.status_code == 400
    text = error_text(response)
    assert "SECRET-INTERNAL-BANNER" not in text and "UNTRUSTED-SERVICE-BODY" not in text
    assert "<html" not in text.lower() and "HTTP/1." not in text


# --- 2. filters that cannot freeze the server -------------------------------------------------------
@pytest.mark.parametrize(
    "pattern, construct",
    [
        (r"(a)\1", "backreference"),
        (r"(?=img/).*", "lookahead"),
        (r"(?!tmp/).*", "negative lookahead"),
        (r".*(?<=\.jpg)", "lookbehind"),
        (r"(?P<x>a)(?P=x)", "backreference"),
    ],
)
def test_filters_with_backtracking_constructs_are_refused_by_name(api, project, cortx_s3, trust, pattern, construct):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    response = validate(api, payload(cortx_s3, bucket, project, regex_filter=pattern))
    assert response.status_code == 400
    assert construct in error_text(response) and "RE2" in error_text(response)


def test_a_catastrophic_pattern_syncs_in_linear_time_with_label_studio_semantics(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "k" * 1000 + "!", b"x")  # (k+)+$ backtracks for ever on this with Python's re
    put(cortx_s3, bucket, "kkkk", b"x")
    put(cortx_s3, bucket, "img/kkk", b"x")  # no match at the start: the filter is anchored there
    storage = create_source(api, cortx_s3, bucket, project, use_blob_urls=True, regex_filter=r"(k+)+$")
    started = time.monotonic()
    result = sync(api, storage["id"])
    assert time.monotonic() - started < 60
    assert result["status"] == "completed"
    assert [_uri(t) for t in project.tasks.all()] == [f"s3://{bucket}/kkkk"]
    layout = api.get("/api/storages/cortx/form").json()
    fields = [f for row in layout for f in row.get("fields") or [] if f and f["name"] == "regex_filter"]
    assert "start of each key" in fields[0]["tooltip"]


def test_a_stored_filter_re2_cannot_run_fails_the_sync_with_the_reason(api, project, cortx_s3, trust):
    from label_studio_cortx.models import CortxImportStorage

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    storage = create_source(api, cortx_s3, bucket, project, use_blob_urls=True)
    CortxImportStorage.objects.filter(pk=storage["id"]).update(regex_filter=r"(a)\1")
    api.post(f"/api/storages/cortx/{storage['id']}/sync")
    stored = CortxImportStorage.objects.get(pk=storage["id"])
    assert stored.status == "failed"
    assert "backreference" in json.dumps(stored.traceback or stored.meta)


# --- 4. storage ids resolved in one place, with permission ------------------------------------------
def test_create_refuses_an_id_and_validate_resolves_ids_with_permission(api, project, user, cortx_s3, trust):
    from rest_framework.test import APIClient
    from users.models import User

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    mine = create_source(api, cortx_s3, bucket, project)
    borrowed = payload(cortx_s3, bucket, project, id=mine["id"])
    borrowed.pop("aws_access_key_id")
    borrowed.pop("aws_secret_access_key")
    # Create with a stored storage's id in the body: refused, its stored secret is never used.
    response = api.post("/api/storages/cortx", borrowed, format="json")
    assert response.status_code == 400 and "id" in error_text(response)
    response = api.post("/api/storages/export/cortx", borrowed, format="json")
    assert response.status_code == 400 and "id" in error_text(response)
    # Validate with an id that does not exist, or is not a number: 404, never a 500.
    for storage_id in (999999, "1 OR 1=1"):
        response = validate(api, {**borrowed, "id": storage_id})
        assert response.status_code == 404, (storage_id, response.content)
    # A member whose membership was revoked may not borrow the stored secret (Label Studio Community has one
    # organization by design; its permission model is kept).
    former = User.objects.create_user(email="former@example.com", password="former-pass-123", username="former")
    organization = user.active_organization
    organization.add_user(former)
    former.active_organization = organization
    former.save(update_fields=["active_organization"])
    organization.members.filter(user=former).update(deleted_at=timezone_now())
    outsider = APIClient()
    outsider.force_authenticate(user=former)
    assert validate(outsider, borrowed).status_code in (403, 404)
    # The storage's own editor: validated with its stored secret (the form does not resend it).
    response = validate(api, borrowed)
    assert response.status_code == 200, response.content


def timezone_now():
    from django.utils import timezone

    return timezone.now()


# --- 5. every key streams; no task file loses good rows ----------------------------------------------
HOSTILE_KEYS = [
    "q/what?.jpg",
    "q/a#b.jpg",
    "q/100%.jpg",
    "q/%20encoded.jpg",
    "q/a+b.jpg",
    "q/with space.jpg",
    "q/ünïcödé-日本.jpg",
    "q/" + "k" * 1000 + ".jpg",
]


def _uri(task) -> str:
    (value,) = task.data.values()  # files mode: one value, under the labeling config's single data key
    return value


def _resolve(api, task_id, uri, **headers):
    fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
    return api.get(f"/tasks/{task_id}/resolve/?fileuri={fileuri}", **headers)


def test_every_key_streams_through_the_proxy(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    for index, key in enumerate(HOSTILE_KEYS):
        assert len(key.encode()) <= 1024
        put(cortx_s3, bucket, key, f"body-{index}".encode(), content_type="image/jpeg")
    storage = create_source(api, cortx_s3, bucket, project, prefix="q", use_blob_urls=True)
    assert sync(api, storage["id"])["last_sync_count"] == len(HOSTILE_KEYS)
    tasks = {_uri(task): task for task in project.tasks.all()}
    assert set(tasks) == {f"s3://{bucket}/{key}" for key in HOSTILE_KEYS}
    for index, key in enumerate(HOSTILE_KEYS):
        uri = f"s3://{bucket}/{key}"
        response = _resolve(api, tasks[uri].id, uri)
        assert response.status_code == 200, (key, response.status_code)
        assert b"".join(response.streaming_content) == f"body-{index}".encode()


def test_every_key_presigns_to_its_own_object(api, project, cortx_s3, trust):
    from urllib.parse import unquote, urlsplit

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    for key in HOSTILE_KEYS:
        put(cortx_s3, bucket, key, b"x")
    storage = create_source(api, cortx_s3, bucket, project, prefix="q", use_blob_urls=True, presign=True)
    sync(api, storage["id"])
    for task in project.tasks.all():
        response = _resolve(api, task.id, _uri(task))
        assert response.status_code in (302, 303), response.status_code
        location = urlsplit(response["Location"])
        assert unquote(location.path) == f"/{bucket}/" + _uri(task).split("/", 3)[3]


def test_a_jsonl_file_with_no_good_line_is_reported_whole(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "tasks/bad.jsonl", "nope\n[]\n")
    storage = create_source(api, cortx_s3, bucket, project, prefix="tasks", use_blob_urls=False)
    result = sync(api, storage["id"])
    assert result["status"] == "completed_with_errors" and project.tasks.count() == 0
    assert "tasks/bad.jsonl: no line is a valid task" in result["traceback"]


def test_target_storage_ids_are_resolved_the_same_way(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    target = create_target(api, cortx_s3, bucket, project)
    body = {"id": target["id"], "project": project.id, "bucket": bucket, "s3_endpoint": cortx_s3.url}
    response = validate(api, body, target=True)
    assert response.status_code == 200, response.content
    response = validate(api, {"id": 424242, "project": project.id, "bucket": bucket}, target=True)
    assert response.status_code == 404


def test_jsonl_lines_are_bounded_and_a_too_long_line_is_skipped_not_held():
    from label_studio_cortx.source.task_files import _bounded_lines

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def iter_chunks(self, size):
            for start in range(0, len(self.data), size):
                yield self.data[start : start + size]

    data = b'{"a": 1}\n' + b"x" * 5000 + b'\n{"b": 2}\r\n\n' + b"y" * 5000
    lines = list(_bounded_lines(Body(data), limit=1000, chunk_size=64))
    assert lines == [b'{"a": 1}', None, b'{"b": 2}\r', b"", None]
