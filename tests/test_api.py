"""The CORTX storage type through Label Studio's REST API, against real S3 endpoints on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading

import pytest
from django.test import override_settings

from tests.storage_helpers import (
    create_storage,
    error_text,
    keys,
    new_bucket,
    payload,
    put,
    read_json,
    read_only_key,
    write_check_only_key,
)

SECRET_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


@pytest.fixture
def trust(settings):
    """Trust the given endpoints as an admin would (they are on 127.0.0.1, which SSRF blocks)."""

    def _trust(*endpoints):
        settings.CORTX_TRUSTED_ENDPOINTS = [e.url for e in endpoints]

    return _trust


def create_source(api, endpoint, bucket, project, **extra):
    response = api.post("/api/storages/cortx/", payload(endpoint, bucket, project, **extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def create_target(api, endpoint, bucket, project, **extra):
    response = api.post("/api/storages/export/cortx", payload(endpoint, bucket, project, **extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- listing, forms --------------------------------------------------------------------------
def test_types_lists_cortx_for_source_and_target(api):
    for url in ("/api/storages/types", "/api/storages/export/types"):
        types = api.get(url).json()
        assert {"name": "cortx", "title": "CORTX S3"} in types
        assert any(t["name"] == "s3" for t in types)


def _form_fields(layout):
    names = set()
    for row in layout:
        for item in row.get("fields") or []:
            if item:
                names.add(item["name"])
        for column in row.get("columns") or []:
            for item in column.get("fields") or []:
                names.add(item["name"])
    return names


def _form_field(layout, name):
    for row in layout:
        items = list(row.get("fields") or []) + [f for c in row.get("columns") or [] for f in c.get("fields") or []]
        for item in items:
            if item and item["name"] == name:
                return item
    raise KeyError(name)


def test_forms_have_every_cortx_field(api, settings):
    settings.CORTX_DEFAULT_ENDPOINT = "https://s3.seagate.com"
    source = api.get("/api/storages/cortx/form").json()
    target = api.get("/api/storages/export/cortx/form").json()
    common = {
        "title",
        "bucket",
        "prefix",
        "s3_endpoint",
        "region_name",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "force_path_style",
        "ca_bundle",
        "verify_tls",
    }
    assert common | {
        "regex_filter",
        "use_blob_urls",
        "presign",
        "presign_ttl",
        "public_endpoint",
        "recursive_scan",
        "sync_remove_missing",
        "sync_update_changed",
        "sync_touch_annotated",
    } <= _form_fields(source)
    assert common | {"can_delete_objects"} <= _form_fields(target)
    assert "https://s3.seagate.com" in _form_field(source, "s3_endpoint")["placeholder"]
    # A text field with a value is read-only in Label Studio's form: defaults are placeholders.
    assert "value" not in _form_field(source, "s3_endpoint") and "value" not in _form_field(target, "region_name")
    assert _form_field(source, "presign")["value"] is False
    assert _form_field(source, "force_path_style")["value"] is True


def test_form_hides_tls_toggle_when_admin_forbids_it(api, settings):
    settings.CORTX_ALLOW_INSECURE_TLS = False
    assert "verify_tls" not in _form_fields(api.get("/api/storages/cortx/form").json())
    assert "verify_tls" not in _form_fields(api.get("/api/storages/export/cortx/form").json())


# --- create, secrets, S3 separation -------------------------------------------------------------
def test_create_hides_secrets_and_never_shows_under_s3(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "a.jpg", b"x")
    created = create_source(api, cortx_s3, bucket, project)
    assert created["type"] == "cortx"
    from label_studio_cortx.models import CortxImportStorage

    # moto rejects unknown session tokens, so the token is stored directly to check it stays hidden.
    CortxImportStorage.objects.filter(pk=created["id"]).update(aws_session_token="token-value-123")
    assert created["presign"] is False and created["force_path_style"] is True and created["verify_tls"] is True
    for field in SECRET_FIELDS:
        assert field not in created
    listed = api.get(f"/api/storages/cortx/?project={project.id}").json()
    assert [s["id"] for s in listed] == [created["id"]]
    detail = api.get(f"/api/storages/cortx/{created['id']}").json()
    raw = str(listed) + str(detail)
    for secret in (cortx_s3.access_key, cortx_s3.secret_key, "token-value-123"):
        assert secret not in raw
    assert api.get(f"/api/storages/s3/?project={project.id}").json() == []
    everything = api.get(f"/api/storages/?project={project.id}").json()
    assert [s["type"] for s in everything] == ["cortx"]

    target = create_target(api, cortx_s3, bucket, project)
    assert target["type"] == "cortx"
    assert api.get(f"/api/storages/export/s3?project={project.id}").json() == []
    assert all(field not in target for field in SECRET_FIELDS)


def task_url(task):
    data = task["data"] if isinstance(task, dict) else task.data
    (value,) = data.values()
    return value


def test_endpoint_is_required(api, project):
    response = api.post("/api/storages/cortx/", {"project": project.id, "bucket": "abc"}, format="json")
    assert response.status_code == 400
    assert "s3_endpoint" in error_text(response)


def test_default_endpoint_applies_when_left_empty(api, project, cortx_s3, trust, settings):
    trust(cortx_s3)
    settings.CORTX_DEFAULT_ENDPOINT = cortx_s3.url
    bucket = new_bucket(cortx_s3)
    data = payload(cortx_s3, bucket, project)
    del data["s3_endpoint"]
    assert create_target(api, cortx_s3, bucket, project, s3_endpoint="")["s3_endpoint"] == cortx_s3.url
    assert api.post("/api/storages/export/cortx/validate", data, format="json").status_code == 200


def test_patch_updates_and_keeps_secrets(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "a.jpg", b"x")
    created = create_source(api, cortx_s3, bucket, project)
    response = api.patch(f"/api/storages/cortx/{created['id']}", {"title": "Renamed", "prefix": ""}, format="json")
    assert response.status_code == 200, response.content
    from label_studio_cortx.models import CortxImportStorage

    stored = CortxImportStorage.objects.get(pk=created["id"])
    from label_studio_cortx.connection import secrets as secret_store

    # Stored encrypted at rest (tests/test_connection_secrets.py); the kept secret is the one given at creation.
    assert stored.title == "Renamed" and secret_store.reveal(stored.aws_secret_access_key) == cortx_s3.secret_key
    assert api.delete(f"/api/storages/cortx/{created['id']}").status_code == 204


# --- check connection: each failure has its own message ---------------------------------------
def validate(api, data, target=False):
    url = "/api/storages/export/cortx/validate" if target else "/api/storages/cortx/validate"
    return api.post(url, data, format="json")


def assert_invalid(response, *fragments):
    assert response.status_code == 400, response.content
    text = error_text(response)
    assert "Debugging info is not available" not in text
    for fragment in fragments:
        assert fragment.lower() in text.lower(), text
    return text


def test_validate_succeeds_over_https_with_ca_bundle(api, project, s3_https, trust):
    trust(s3_https)
    bucket = new_bucket(s3_https)
    put(s3_https, bucket, "images/a.jpg", b"x")
    assert validate(api, payload(s3_https, bucket, project, prefix="images")).status_code == 200
    assert validate(api, payload(s3_https, bucket, project), target=True).status_code == 200


def test_tls_connections_acknowledge_each_response_at_once(api, project, s3_https, trust, monkeypatch):
    import ssl

    from tests.storage_helpers import quick_acks

    seen = quick_acks(monkeypatch)
    trust(s3_https)
    bucket = new_bucket(s3_https)
    put(s3_https, bucket, "images/a.jpg", b"x")
    storage = create_source(api, s3_https, bucket, project, prefix="images", use_blob_urls=True)
    assert sync(api, storage["id"])["last_sync_count"] == 1
    assert seen and all(issubclass(kind, ssl.SSLSocket) and mode == 1 for kind, mode in seen), seen


def test_validate_accepts_a_ca_bundle_whose_line_breaks_were_collapsed(api, project, s3_https, trust):
    trust(s3_https)
    bucket = new_bucket(s3_https)
    one_line = s3_https.ca_pem.replace("\n", " ")
    assert validate(api, payload(s3_https, bucket, project, ca_bundle=one_line)).status_code == 200
    no_breaks = s3_https.ca_pem.replace("\n", "")
    assert validate(api, payload(s3_https, bucket, project, ca_bundle=no_breaks)).status_code == 200


def test_validate_untrusted_certificate_says_add_ca_bundle(api, project, s3_https, trust):
    trust(s3_https)
    bucket = new_bucket(s3_https)
    response = validate(api, payload(s3_https, bucket, project, ca_bundle=""))
    assert_invalid(response, "not trusted", "CA bundle")


def test_validate_malformed_ca_bundle(api, project, s3_https, trust):
    trust(s3_https)
    response = validate(api, payload(s3_https, "some-bucket", project, ca_bundle="-----BEGIN CERTIFICATE----- abc"))
    assert_invalid(response, "CA bundle")
    response = validate(
        api,
        payload(
            s3_https,
            "some-bucket",
            project,
            ca_bundle="-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----",
        ),
    )
    assert_invalid(response, "CA bundle", "X.509")


def test_validate_wrong_secret_and_unknown_key(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    text = assert_invalid(
        validate(api, payload(cortx_s3, bucket, project, aws_secret_access_key="wrong-secret")),
        "secret access key is wrong",
    )
    assert "wrong-secret" not in text and cortx_s3.access_key not in text
    assert_invalid(
        validate(api, payload(cortx_s3, bucket, project, aws_access_key_id="AKIANOTKNOWN000000")),
        "access key ID is not known",
    )


def test_validate_missing_bucket(api, project, cortx_s3, trust):
    trust(cortx_s3)
    assert_invalid(
        validate(api, payload(cortx_s3, "no-such-bucket-here", project)), "does not exist", "no-such-bucket-here"
    )
    assert_invalid(validate(api, payload(cortx_s3, "no-such-bucket-here", project), target=True), "does not exist")


def test_validate_empty_prefix_on_source_only(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "other/a.jpg", b"x")
    assert_invalid(validate(api, payload(cortx_s3, bucket, project, prefix="images")), "No objects found", "images/")
    assert validate(api, payload(cortx_s3, bucket, project, prefix="images"), target=True).status_code == 200


def test_validate_target_needs_write_permission_and_leaves_nothing(api, project, cortx_s3, trust):
    """A read-only key passes a source check but not a target's; the write check leaves no trace."""
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "images/a.jpg", b"x")
    key_id, secret = read_only_key(cortx_s3)
    read_only = payload(cortx_s3, bucket, project, prefix="annotations", aws_access_key_id=key_id)
    read_only["aws_secret_access_key"] = secret
    assert validate(api, {**read_only, "prefix": "images"}).status_code == 200
    response = validate(api, read_only, target=True)
    assert_invalid(response, f"can read bucket '{bucket}' but may not write under prefix 'annotations/'")
    assert secret not in error_text(response) and key_id not in error_text(response)

    assert validate(api, payload(cortx_s3, bucket, project, prefix="annotations"), target=True).status_code == 200
    client = cortx_s3.client()
    assert keys(cortx_s3, bucket) == ["images/a.jpg"]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_validate_invalid_regex(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    assert_invalid(validate(api, payload(cortx_s3, bucket, project, regex_filter="*.jpg")), "regex", "invalid")


def test_validate_unresolvable_host(api, project, settings):
    settings.CORTX_TRUSTED_ENDPOINTS = ["http://cortx-does-not-exist.invalid:8000"]
    data = {
        "project": project.id,
        "bucket": "abc",
        "s3_endpoint": "http://cortx-does-not-exist.invalid:8000",
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
    }
    assert_invalid(validate(api, data), "cannot be resolved")


def test_validate_connection_refused(api, project, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings.CORTX_TRUSTED_ENDPOINTS = [url]
    data = {
        "project": project.id,
        "bucket": "abc",
        "s3_endpoint": url,
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
    }
    assert_invalid(validate(api, data), "refused", str(port))


def test_validate_timeout(api, project, settings):
    # A server that accepts connections and never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    settings.CORTX_TRUSTED_ENDPOINTS = [url]
    settings.CORTX_READ_TIMEOUT = 0.5
    settings.CORTX_MAX_ATTEMPTS = 1
    data = {
        "project": project.id,
        "bucket": "abc",
        "s3_endpoint": url,
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
    }
    try:
        assert_invalid(validate(api, data), "did not answer in time")
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


# --- SSRF --------------------------------------------------------------------------------------
def test_untrusted_private_endpoint_is_refused_with_the_setting_named(api, project, cortx_s3, settings):
    settings.CORTX_TRUSTED_ENDPOINTS = []
    bucket = new_bucket(cortx_s3)
    response = api.post("/api/storages/cortx/", payload(cortx_s3, bucket, project), format="json")
    assert_invalid(response, "CORTX_TRUSTED_ENDPOINTS", "private")
    assert validate(api, payload(cortx_s3, bucket, project)).status_code == 400


def test_ssrf_also_guards_stored_storages(api, project, cortx_s3, trust, settings):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "a.jpg", b"x")
    created = create_source(api, cortx_s3, bucket, project, use_blob_urls=True)
    settings.CORTX_TRUSTED_ENDPOINTS = []  # the admin removes the endpoint from the trusted list
    response = api.post(f"/api/storages/cortx/{created['id']}/sync")
    assert_invalid(response, "CORTX_TRUSTED_ENDPOINTS")


# --- sync ------------------------------------------------------------------------------------------
def sync(api, storage_id, target=False):
    url = f"/api/storages/export/cortx/{storage_id}/sync" if target else f"/api/storages/cortx/{storage_id}/sync"
    response = api.post(url)
    assert response.status_code == 200, response.content
    return response.json()


def test_sync_files_mode_creates_one_task_per_object_without_duplicates(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    for i in range(5):
        put(cortx_s3, bucket, f"images/{i}.jpg", b"jpeg")
    put(cortx_s3, bucket, "images/notes.txt", b"text")
    put(cortx_s3, bucket, "images/nested/deep.jpg", b"jpeg")
    storage = create_source(
        api, cortx_s3, bucket, project, prefix="images", use_blob_urls=True, regex_filter=r".*\.jpg$"
    )
    result = sync(api, storage["id"])
    assert result["status"] == "completed" and result["last_sync_count"] == 5
    urls = sorted(task_url(t) for t in project.tasks.all())
    assert urls == [f"s3://{bucket}/images/{i}.jpg" for i in range(5)]

    put(cortx_s3, bucket, "images/5.jpg", b"jpeg")
    result = sync(api, storage["id"])
    assert result["last_sync_count"] == 1
    assert project.tasks.count() == 6
    sync(api, storage["id"])
    assert project.tasks.count() == 6

    recursive = api.patch(f"/api/storages/cortx/{storage['id']}", {"recursive_scan": True}, format="json")
    assert recursive.status_code == 200, recursive.content
    sync(api, storage["id"])
    assert project.tasks.count() == 7


def test_sync_tasks_mode_reads_json_and_jsonl(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "tasks/one.json", json.dumps({"data": {"image": f"s3://{bucket}/img/1.jpg"}}))
    put(cortx_s3, bucket, "tasks/list.json", '[{"image": "s3://b/x.jpg"}, {"image": "s3://b/y.jpg"}]')
    put(
        cortx_s3,
        bucket,
        "tasks/many.jsonl",
        '{"image": "s3://b/1.jpg"}\n{"image": "s3://b/2.jpg"}\n{"image": "s3://b/3.jpg"}\n',
    )
    storage = create_source(api, cortx_s3, bucket, project, prefix="tasks", use_blob_urls=False)
    result = sync(api, storage["id"])
    assert result["status"] == "completed", result
    assert project.tasks.count() == 6
    sync(api, storage["id"])
    assert project.tasks.count() == 6


def test_malformed_task_file_is_reported_by_key_and_the_rest_imported(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "tasks/a.json", '{"image": "s3://b/1.jpg"}')
    storage = create_source(api, cortx_s3, bucket, project, prefix="tasks", use_blob_urls=False)
    sync(api, storage["id"])
    put(cortx_s3, bucket, "tasks/b.json", '{"image": ')
    put(cortx_s3, bucket, "tasks/c.jsonl", '{"image": "s3://b/2.jpg"}\nnot json\n')
    put(cortx_s3, bucket, "tasks/d.json", '[{"image": "s3://b/3.jpg"}]')
    put(cortx_s3, bucket, "tasks/e.jpg", b"jpeg")
    result = sync(api, storage["id"])
    assert result["status"] == "completed_with_errors"
    assert "tasks/b.json" in result["traceback"] and "tasks/c.jsonl: " in result["traceback"]
    assert "line 2" in result["traceback"] and "tasks/e.jpg" in result["traceback"] and '"Files"' in result["traceback"]
    assert "tasks/a.json" not in result["traceback"]
    # c.jsonl keeps its good line (its bad line is reported by number); b.json and e.jpg import nothing.
    assert project.tasks.count() == 3 and result["last_sync_count"] == 2
    # Fixing the files and syncing again imports what was missing, nothing else changes.
    put(cortx_s3, bucket, "tasks/b.json", '{"image": "s3://b/4.jpg"}')
    put(cortx_s3, bucket, "tasks/c.jsonl", '{"image": "s3://b/2.jpg"}\n')
    result = sync(api, storage["id"])
    assert project.tasks.count() == 4


# --- media ------------------------------------------------------------------------------------------
def _resolve_url(task, uri):
    return f"/tasks/{task.id}/resolve/?fileuri={base64.urlsafe_b64encode(uri.encode()).decode()}"


def test_proxy_resolve_streams_the_object_with_range(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    body = bytes(range(256)) * 40
    put(cortx_s3, bucket, "img/a.png", body, content_type="image/png")
    storage = create_source(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
    sync(api, storage["id"])
    task = project.tasks.get()
    # The task API hands the browser a Label Studio URL, never the store's.
    served = task_url(api.get(f"/api/tasks/{task.id}").json())
    assert "/resolve/" in served and cortx_s3.url not in served

    response = api.get(_resolve_url(task, task_url(task)))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == body
    partial = api.get(_resolve_url(task, task_url(task)), HTTP_RANGE="bytes=10-19")
    assert partial.status_code == 206
    assert b"".join(partial.streaming_content) == body[10:20]
    assert all(r.method != "OPTIONS" and "X-Amz-Signature" not in r.query for r in cortx_s3.requests)


def test_proxy_finds_a_cortx_storage_without_loading_every_storage_type(api, project, user, cortx_s3, trust):
    """The plugin's resolver asks one table (Label Studio's asks every storage type's); the same answers: the
    object for the task and the project routes, 403 for someone without access, Label Studio's resolver for a
    URL no CORTX storage of the project serves."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from io_storages.s3.models import S3ImportStorage
    from rest_framework.test import APIClient
    from users.models import User

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    body = b"png" * 1000
    put(cortx_s3, bucket, "img/a.png", body, content_type="image/png")
    storage = create_source(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
    sync(api, storage["id"])
    task = project.tasks.get()
    uri = task_url(task)
    with CaptureQueriesContext(connection) as queries:
        response = api.get(_resolve_url(task, uri))
        assert b"".join(response.streaming_content) == body
    tables = " ".join(q["sql"] for q in queries.captured_queries)
    assert "cortximportstorage" in tables and "s3importstorage" not in tables and "gcsimportstorage" not in tables
    encoded = base64.urlsafe_b64encode(uri.encode()).decode()
    response = api.get(f"/projects/{project.id}/resolve/?fileuri={encoded}")
    assert response.status_code == 200 and b"".join(response.streaming_content) == body

    # Label Studio Community runs one organization: the access it refuses is a revoked membership's.
    former = User.objects.create_user(email="former@example.com", password="former-pass-123", username="former")
    organization = user.active_organization
    organization.add_user(former)
    former.active_organization = organization
    former.save(update_fields=["active_organization"])
    organization.members.filter(user=former).update(deleted_at=timezone.now())
    outsider = APIClient()
    outsider.force_authenticate(user=former)
    assert outsider.get(_resolve_url(task, uri)).status_code == 403
    assert outsider.get(f"/projects/{project.id}/resolve/?fileuri={encoded}").status_code == 403
    assert api.get(f"/tasks/{task.id}/resolve/").status_code == 400
    assert api.get(_resolve_url(type(task)(id=10**9), uri)).status_code == 404

    # A bucket only Label Studio's own S3 storage of the project knows: its resolver answers (a presigned link).
    S3ImportStorage.objects.create(
        project=project, bucket="ls-only", presign=True, aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x"
    )
    response = api.get(_resolve_url(task, "s3://ls-only/b.png"))
    assert response.status_code == 303 and "ls-only" in response["Location"]
    assert api.get(_resolve_url(task, "s3://nobody/b.png")).status_code == 404


def test_presign_mode_redirects_to_path_style_url_on_public_endpoint(api, project, s3_http, trust):
    trust(s3_http)
    bucket = new_bucket(s3_http)
    put(s3_http, bucket, "img/a.png", b"png-bytes", content_type="image/png")
    storage = create_source(
        api,
        s3_http,
        bucket,
        project,
        prefix="img",
        use_blob_urls=True,
        presign=True,
        public_endpoint="https://s3.public.example.com",
    )
    sync(api, storage["id"])
    task = project.tasks.get()
    response = api.get(_resolve_url(task, task_url(task)))
    assert response.status_code in (302, 303)
    assert response["Location"].startswith(f"https://s3.public.example.com/{bucket}/img/a.png?")

    api.patch(f"/api/storages/cortx/{storage['id']}", {"public_endpoint": ""}, format="json")
    response = api.get(_resolve_url(task, task_url(task)))
    # Without a public endpoint the link names the server's endpoint. (moto cannot serve presigned
    # requests while it enforces authentication, so the URL is checked rather than fetched.)
    assert response["Location"].startswith(f"{s3_http.url}/{bucket}/img/a.png?")
    assert "X-Amz-Signature=" in response["Location"]


# --- target: export on save and delete -----------------------------------------------------------
ANNOTATION_RESULT = [
    {
        "from_name": "quality",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": ["good"]},
    }
]


def _task(project, bucket):
    from tasks.models import Task

    return Task.objects.create(project=project, data={"image": f"s3://{bucket}/img/a.jpg"})


def test_export_on_save_delete_and_sync_catch_up(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    task = _task(project, bucket)
    target = create_target(api, cortx_s3, bucket, project, prefix="annotations", can_delete_objects=True)
    response = api.post(f"/api/tasks/{task.id}/annotations/", {"result": ANNOTATION_RESULT}, format="json")
    assert response.status_code == 201, response.content
    annotation_id = response.json()["id"]
    key = f"annotations/{annotation_id}"
    assert keys(cortx_s3, bucket, "annotations/") == [key]
    exported = read_json(cortx_s3, bucket, key)
    assert exported["id"] == annotation_id and exported["result"] == ANNOTATION_RESULT
    assert exported["task"]["id"] == task.id

    assert api.delete(f"/api/annotations/{annotation_id}/").status_code == 204
    assert keys(cortx_s3, bucket, "annotations/") == []

    # Annotations written while the target did not exist are written by a manual sync.
    from tasks.models import Annotation

    from label_studio_cortx.models import CortxExportStorage

    CortxExportStorage.objects.filter(pk=target["id"]).update(prefix="later")
    Annotation.objects.create(task=task, project=project, result=ANNOTATION_RESULT)
    result = sync(api, target["id"], target=True)
    assert result["status"] == "completed"
    assert len(keys(cortx_s3, bucket, "later/")) == 1


def test_unreachable_store_never_fails_an_annotation_save(api, project, cortx_s3, trust, caplog):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    task = _task(project, bucket)
    target = create_target(api, cortx_s3, bucket, project)
    from label_studio_cortx.models import CortxExportStorage

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    CortxExportStorage.objects.filter(pk=target["id"]).update(s3_endpoint=dead)
    with (
        override_settings(CORTX_TRUSTED_ENDPOINTS=[cortx_s3.url, dead], CORTX_MAX_ATTEMPTS=1),
        caplog.at_level(logging.DEBUG),
    ):
        response = api.post(f"/api/tasks/{task.id}/annotations/", {"result": ANNOTATION_RESULT}, format="json")
    assert response.status_code == 201
    assert "refused" in caplog.text
    for secret in (cortx_s3.access_key, cortx_s3.secret_key):
        assert secret not in caplog.text

    CortxExportStorage.objects.filter(pk=target["id"]).update(s3_endpoint=cortx_s3.url)
    sync(api, target["id"], target=True)
    assert keys(cortx_s3, bucket) == [str(response.json()["id"])]


# --- the whole flow stays CORTX-compatible ----------------------------------------------------------
def test_every_request_is_path_style_without_flexible_checksums(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "img/a.jpg", b"jpeg")
    before = len(cortx_s3.requests)
    storage = create_source(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
    sync(api, storage["id"])
    create_target(api, cortx_s3, bucket, project, prefix="out", can_delete_objects=True)
    task = project.tasks.get()
    annotation = api.post(f"/api/tasks/{task.id}/annotations/", {"result": ANNOTATION_RESULT}, format="json").json()
    api.delete(f"/api/annotations/{annotation['id']}/")
    seen = cortx_s3.requests[before:]
    assert seen, "the filter saw no requests"
    assert not [r for r in seen if r.rejected], [(r.method, r.path, r.rule) for r in seen if r.rejected]
    assert all(r.path.startswith(f"/{bucket}") for r in seen)
    assert {"PUT", "DELETE", "GET"} <= {r.method for r in seen}


def test_target_prefix_with_a_trailing_slash_gives_one_slash(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    task = _task(project, bucket)
    create_target(api, cortx_s3, bucket, project, prefix="annotations/", can_delete_objects=True)
    annotation = api.post(f"/api/tasks/{task.id}/annotations/", {"result": ANNOTATION_RESULT}, format="json").json()
    assert keys(cortx_s3, bucket) == [f"annotations/{annotation['id']}"]
    api.delete(f"/api/annotations/{annotation['id']}/")
    assert keys(cortx_s3, bucket) == []


def test_target_sync_reports_failed_uploads_and_can_be_rerun(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    task = _task(project, bucket)
    target = create_target(api, cortx_s3, bucket, project)
    from tasks.models import Annotation

    from label_studio_cortx.models import CortxExportStorage

    # A key that may not write at all: the save-time export fails quietly, a sync is refused up front.
    key_id, secret = read_only_key(cortx_s3)
    CortxExportStorage.objects.filter(pk=target["id"]).update(aws_access_key_id=key_id, aws_secret_access_key=secret)
    annotation = Annotation.objects.create(task=task, project=project, result=ANNOTATION_RESULT)
    assert_invalid(api.post(f"/api/storages/export/cortx/{target['id']}/sync"), "may not write")
    # One that passes the write check but may not write annotations: each failed upload is reported.
    key_id, secret = write_check_only_key(cortx_s3, bucket)
    CortxExportStorage.objects.filter(pk=target["id"]).update(aws_access_key_id=key_id, aws_secret_access_key=secret)
    result = sync(api, target["id"], target=True)
    assert result["status"] == "completed_with_errors"
    assert f"Annotation {annotation.id}" in result["traceback"] and "denied" in result["traceback"]
    assert secret not in result["traceback"] and key_id not in result["traceback"]
    assert Annotation.objects.filter(pk=annotation.pk).exists() and keys(cortx_s3, bucket) == []

    CortxExportStorage.objects.filter(pk=target["id"]).update(
        aws_access_key_id=cortx_s3.access_key, aws_secret_access_key=cortx_s3.secret_key
    )
    assert sync(api, target["id"], target=True)["status"] == "completed"
    assert keys(cortx_s3, bucket) == [str(annotation.id)]


def test_secrets_never_reach_logs_or_errors(api, project, cortx_s3, s3_https, trust, caplog):
    trust(cortx_s3, s3_https)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "img/a.jpg", b"x")
    wrong_secret = "wrong-secret-value-42"
    texts = []
    with caplog.at_level(logging.DEBUG):
        texts.append(error_text(validate(api, payload(cortx_s3, bucket, project, aws_secret_access_key=wrong_secret))))
        texts.append(error_text(validate(api, payload(s3_https, bucket, project, ca_bundle=""))))
        storage = create_source(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
        texts.append(json.dumps(sync(api, storage["id"])))
        target = create_target(api, cortx_s3, bucket, project, prefix="out")
        texts.append(json.dumps(api.get(f"/api/storages/export/cortx/{target['id']}").json()))
        task = project.tasks.get()
        api.post(f"/api/tasks/{task.id}/annotations/", {"result": ANNOTATION_RESULT}, format="json")
        from label_studio_cortx.models import CortxExportStorage

        CortxExportStorage.objects.filter(pk=target["id"]).update(aws_secret_access_key=wrong_secret)
        response = api.post(f"/api/storages/export/cortx/{target['id']}/sync")
        assert response.status_code == 400
        texts.append(error_text(response))
    everything = caplog.text + "".join(texts)
    assert "secret access key is wrong" in everything
    for secret in (cortx_s3.access_key, cortx_s3.secret_key, s3_https.secret_key, wrong_secret):
        assert secret not in everything


def test_files_lists_what_a_sync_would_import(api, project, cortx_s3, trust):
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    for name in ("img/a.jpg", "img/b.png", "img/c.txt", "img/deep/d.jpg"):
        put(cortx_s3, bucket, name, b"x")
    data = payload(cortx_s3, bucket, project, prefix="img", regex_filter=r".*\.(jpg|png)$", limit=10)
    response = api.post("/api/storages/cortx/files", data, format="json")
    assert response.status_code == 200, response.content
    assert [f["key"] for f in response.json()["files"]] == ["img/a.jpg", "img/b.png"]
    assert response.json()["files"][0]["size"] == 1
    bad = api.post("/api/storages/cortx/files", payload(cortx_s3, bucket, project, aws_secret_access_key="nope"))
    assert_invalid(bad, "secret access key is wrong")


def test_switching_tls_verification_off_is_an_admin_decision(api, project, s3_https, trust, settings, caplog):
    trust(s3_https)
    bucket = new_bucket(s3_https)
    with caplog.at_level(logging.WARNING):
        allowed = validate(api, payload(s3_https, bucket, project, ca_bundle="", verify_tls=False))
    assert allowed.status_code == 200, allowed.content
    assert "does not verify TLS" in caplog.text
    settings.CORTX_ALLOW_INSECURE_TLS = False
    refused = api.post(
        "/api/storages/cortx/", payload(s3_https, bucket, project, ca_bundle="", verify_tls=False), format="json"
    )
    assert_invalid(refused, "CORTX_ALLOW_INSECURE_TLS")


def test_target_sync_records_each_batch_of_links_in_one_query(project, cortx_s3, trust):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from tasks.models import Annotation, Task

    from label_studio_cortx.models import CortxExportStorage
    from label_studio_cortx.target.export import EXPORT_BATCH_SIZE

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    count = 2 * EXPORT_BATCH_SIZE + 50  # three batches
    tasks = Task.objects.bulk_create(
        [Task(project=project, data={"image": f"s3://{bucket}/{i}"}) for i in range(count)]
    )
    Annotation.objects.bulk_create([Annotation(task=t, project=project, result=ANNOTATION_RESULT) for t in tasks])
    storage = CortxExportStorage.objects.create(
        project=project,
        bucket=bucket,
        s3_endpoint=cortx_s3.url,
        aws_access_key_id=cortx_s3.access_key,
        aws_secret_access_key=cortx_s3.secret_key,
    )
    batches = [EXPORT_BATCH_SIZE, EXPORT_BATCH_SIZE, 50]
    for run in range(2):  # the second run finds every link already there
        before = timezone.now()
        storage.info_set_queued()
        with CaptureQueriesContext(connection) as queries:
            storage.save_annotations(Annotation.objects.filter(project=project))
        link_queries = [q["sql"] for q in queries.captured_queries if "cortxexportstoragelink" in q["sql"].lower()]
        # One upsert per batch: a single multi-row statement on SQLite and PostgreSQL alike.
        assert all(sql.startswith("INSERT") and "ON CONFLICT" in sql for sql in link_queries), link_queries
        assert len(link_queries) == len(batches), (run, link_queries)
        # Label Studio's serializer reads each task's comment authors: one query per batch, not per annotation.
        authors = [q for q in queries.captured_queries if "task_comment_authors" in q["sql"].lower()]
        assert len(authors) == len(batches), (run, len(authors))
        links = storage.links.all()
        assert links.count() == count and links.filter(updated_at__gte=before).count() == count
    assert len(keys(cortx_s3, bucket)) == count


def test_batch_serialization_writes_what_label_studio_writes(project, user, cortx_s3, trust):
    """A target sync (batches, the storage's own project instance, prefetched comment authors) writes exactly
    the bytes Label Studio's per-annotation serialization gives, for annotations with and without an author,
    comment authors and task meta."""
    from tasks.models import Annotation, Task

    from label_studio_cortx.models import CortxExportStorage
    from label_studio_cortx.target.export import object_key

    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    storage = create_storage(CortxExportStorage, project, cortx_s3, bucket)
    annotations = []
    for i in range(5):
        task = Task.objects.create(project=project, data={"image": f"s3://{bucket}/img/{i}.jpg"}, meta={"i": i})
        if i % 2:
            task.comment_authors.add(user)
        annotations.append(
            Annotation.objects.create(
                task=task, project=project, result=ANNOTATION_RESULT, completed_by=user if i % 3 else None
            )
        )
    storage.info_set_queued()
    storage.save_annotations(Annotation.objects.filter(project=project))
    for annotation in annotations:
        fresh = Annotation.objects.get(pk=annotation.pk)
        expected = json.dumps(storage._get_serialized_data(fresh)).encode()
        written = cortx_s3.client().get_object(Bucket=bucket, Key=object_key(storage, fresh))["Body"].read()
        assert written == expected
