"""Media links (label_studio_cortx.source.media_links, label_studio_cortx.media_gateway): what a browser session gets
for proxied media, the fast path in front of Django, and the full path for everything else, against moto through
the CORTX profile. Each refusal is checked on both paths: the fast path declines (the wrapped application answers),
and Label Studio's own authentication then decides.
"""

from __future__ import annotations

import io
import logging
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.backends import ModelBackend
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from label_studio_cortx import conf, media_gateway, media_storages
from label_studio_cortx.source import media_links
from tests.storage_helpers import new_bucket, put
from tests.test_api import _resolve_url, create_source, create_target, sync, task_url, trust  # noqa: F401 - trust is a fixture

BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
FELL_THROUGH = 599


@pytest.fixture(autouse=True)
def _no_connection_closing(monkeypatch):
    # As Django's test client does for request_started/finished: the test's transaction keeps the connection.
    monkeypatch.setattr(media_gateway, "close_old_connections", lambda: None)
    # The token path sends request_started/finished as Django's handler does: their close_old_connections too.
    monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
    monkeypatch.setattr(media_storages, "rows", media_storages.StorageRows(seconds=0))  # every row read again


def browser(user) -> Client:
    """A logged-in browser: a real session in the database, as Label Studio's login view leaves it."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")  # as Label Studio's login view
    session = client.session
    session["last_login"] = time.time()  # Label Studio's inactivity middleware logs out sessions without it
    session.save()
    # Label Studio keeps sessions in signed cookies: the saved session is a new cookie value.
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
    return client


def session_cookie(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


class Fallthrough:
    """The application behind the gateway: records that the fast path declined."""

    def __init__(self):
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        start_response(f"{FELL_THROUGH} Fell Through", [])
        return [b""]


def call(app, path: str, cookie: str | None = None, method: str = "GET", **headers: str):
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = f"csrftoken=x; {django_settings.SESSION_COOKIE_NAME}={cookie}"
    for name, value in headers.items():
        environ["HTTP_" + name.upper()] = value
    answer: dict = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):  # as a WSGI server does: Django's response sends request_finished
            result.close()
    return answer["status"], answer["headers"], body


@pytest.fixture
def image(api, project, cortx_s3, trust):  # noqa: F811 - trust is the fixture
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "img/a cat.png", BODY, content_type="image/png")
    storage = create_source(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
    sync(api, storage["id"])
    return bucket, storage, project.tasks.get()


def link_path(client, task) -> str:
    url = task_url(client.get(f"/api/tasks/{task.id}").json())
    return urlsplit(url).path


def test_a_browser_session_gets_a_media_link_and_an_api_client_the_resolve_url(api, user, image, cortx_s3):
    _, _, task = image
    path = link_path(browser(user), task)
    assert path.startswith("/cortx/media/") and path.endswith("/a_cat.png") and cortx_s3.url not in path
    # An API client (a token: no session to present with a link) gets Label Studio's URL, as before.
    assert "/resolve/?fileuri=" in task_url(api.get(f"/api/tasks/{task.id}").json())
    # The same task in the same window gives the same link: the browser's cache and revalidation keep working.
    assert link_path(browser(user), task) == path


def test_links_off_gives_the_resolve_url(user, image, settings):
    _, _, task = image
    client = browser(user)
    path = link_path(client, task)
    settings.CORTX_MEDIA_LINKS = False
    assert "/resolve/?fileuri=" in task_url(client.get(f"/api/tasks/{task.id}").json())
    # A link made before goes through Label Studio's authentication from then on.
    assert call(media_gateway.wrap(Fallthrough()), path, session_cookie(client))[0] == FELL_THROUGH
    assert b"".join(client.get(path).streaming_content) == BODY


def test_the_fast_path_serves_range_and_304_without_django(user, image, cortx_s3):
    _, _, task = image
    client = browser(user)
    path, cookie, inner = link_path(client, task), session_cookie(client), Fallthrough()
    app = media_gateway.wrap(inner)

    status, headers, body = call(app, path, cookie)
    assert (status, body, inner.calls) == (200, BODY, 0)
    assert headers["Content-Type"] == "image/png" and headers["Content-Length"] == str(len(BODY))
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == "sandbox"
    assert headers["Cache-Control"].startswith("private") and headers["Accept-Ranges"] == "bytes"

    status, headers, body = call(app, path, cookie, range="bytes=10-19")
    assert (status, body) == (206, BODY[10:20]) and headers["Content-Range"] == f"bytes 10-19/{len(BODY)}"

    etag = headers["ETag"]
    mark = len(cortx_s3.requests)
    status, headers, body = call(app, path, cookie, if_none_match=etag)
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    (get,) = [r for r in cortx_s3.requests_since(mark) if r.method == "GET"]
    assert get.headers.get("if-none-match") and get.status == 304  # the store sent no body either

    with override_settings(RESOLVER_PROXY_ENABLE_ETAG_CACHE=False):  # Label Studio's switch: no revalidation
        assert call(app, path, cookie, if_none_match=etag)[::2] == (200, BODY)

    status, headers, body = call(app, path, cookie, method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(BODY)))
    assert inner.calls == 0


def test_the_full_path_serves_an_expired_link_to_its_user_only(user, image, monkeypatch):
    _, _, task = image
    client = browser(user)
    path, cookie, inner = link_path(client, task), session_cookie(client), Fallthrough()
    later = time.time() + 3 * conf.media_link_seconds()
    monkeypatch.setattr(media_links.time, "time", lambda: later)
    # Expired: the fast path declines, and Django serves it after Label Studio's authentication.
    assert call(media_gateway.wrap(inner), path, cookie)[0] == FELL_THROUGH
    response = client.get(path)
    assert response.status_code == 200 and b"".join(response.streaming_content) == BODY
    assert Client().get(path).status_code in (401, 403)


def test_a_link_is_not_a_key(api, user, project, image):
    """Without its session it is refused, by the fast path and then by Label Studio: no cookie, another user's
    session, a logged-out session, a deactivated user, a changed token, a deleted storage."""
    from django.utils import timezone
    from users.models import User

    _, storage, task = image
    client = browser(user)
    path, cookie, inner = link_path(client, task), session_cookie(client), Fallthrough()
    app = media_gateway.wrap(inner)
    assert call(app, path, cookie)[0] == 200

    assert call(app, path)[0] == FELL_THROUGH
    assert Client().get(path).status_code in (401, 403)

    # Another user: the fast path declines, and Label Studio's access rule decides, as for /tasks/<id>/resolve/
    # (Community runs one organization: what it refuses is a revoked membership).
    other_user = User.objects.create_user(email="other@example.com", password="other-pass-123", username="o")
    organization = user.active_organization
    organization.add_user(other_user)
    other = browser(other_user)
    assert call(app, path, session_cookie(other))[0] == FELL_THROUGH
    assert other.get(path).status_code == other.get(_resolve_url(task, task_url(task))).status_code == 200
    organization.members.filter(user=other_user).update(deleted_at=timezone.now())
    assert other.get(path).status_code == 404
    assert call(app, path, "not-a-session")[0] == FELL_THROUGH

    token, _, name = path.removeprefix("/cortx/media/").partition("/")
    forged = f"/cortx/media/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}/{name}"
    assert call(app, forged, cookie)[0] == FELL_THROUGH
    assert client.get(forged).status_code == 404
    assert client.get(f"/cortx/media/{'x' * 9000}/a.png").status_code == 404

    # With an Authorization header (an API client) Label Studio authenticates, then the resolve check applies.
    assert call(app, path, cookie, authorization="Token nope")[0] == FELL_THROUGH
    assert b"".join(api.get(path).streaming_content) == BODY

    user.set_password("a-new-password-9")  # Django ends the user's other sessions when the password changes
    user.save()
    assert call(app, path, cookie)[0] == FELL_THROUGH
    user.set_password("secret-pass-123")
    user.save()

    old = browser(user)  # a session older than Label Studio's MAX_SESSION_AGE
    session = old.session
    session["last_login"] = time.time() - django_settings.MAX_SESSION_AGE - 60
    session.save()
    assert call(app, path, session.session_key)[0] == FELL_THROUGH

    client = browser(user)
    path, cookie = link_path(client, task), session_cookie(client)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert call(app, path, cookie)[0] == FELL_THROUGH
    User.objects.filter(pk=user.pk).update(is_active=True)

    assert call(app, path, cookie)[0] == 200
    organization.members.filter(user=user).update(deleted_at=timezone.now())  # the link's own user, revoked
    assert call(app, path, cookie)[0] == FELL_THROUGH
    organization.members.filter(user=user).update(deleted_at=None)
    assert api.delete(f"/api/storages/cortx/{storage['id']}").status_code == 204
    assert call(app, path, cookie)[0] == FELL_THROUGH
    assert client.get(path).status_code == 404


def test_html_from_a_bucket_cannot_run_in_label_studios_origin(api, user, project, cortx_s3, trust):  # noqa: F811
    trust(cortx_s3)
    bucket = new_bucket(cortx_s3)
    put(cortx_s3, bucket, "img/x.html", b"<script>alert(document.cookie)</script>", content_type="text/html")
    storage = create_source(api, cortx_s3, bucket, project, prefix="img", use_blob_urls=True)
    sync(api, storage["id"])
    client = browser(user)
    path = link_path(client, project.tasks.get())
    task = project.tasks.get()
    for _status, headers, _ in (
        call(media_gateway.wrap(Fallthrough()), path, session_cookie(client)),
        (0, client.get(path), None),
        (0, api.get(_resolve_url(task, task_url(task))), None),  # Label Studio's resolve URL: the same answer
    ):
        assert headers["Content-Security-Policy"] == "sandbox" and headers["X-Content-Type-Options"] == "nosniff"


def test_a_store_error_is_a_424_without_the_stores_words(user, image, cortx_s3):
    bucket, _, task = image
    client = browser(user)
    path = link_path(client, task)
    cortx_s3.client().delete_object(Bucket=bucket, Key="img/a cat.png")
    status, headers, body = call(media_gateway.wrap(Fallthrough()), path, session_cookie(client))
    assert status == 424 and b"NoSuchKey" not in body and bucket.encode() not in body


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("bytes=0-", "bytes=0-"),
        ("bytes=0-0", "bytes=0-0"),
        ("bytes=10-19", "bytes=10-19"),
        ("bytes=10-", "bytes=10-109"),
        ("bytes=10-99999", "bytes=10-109"),
        ("bytes=-100", "bytes=0-99"),
        ("bytes=-", None),
        ("bytes=1-2,5-6", None),
        ("bytes=20-10", None),
        ("items=0-1", None),
        ("bytes=" + "9" * 40 + "-", None),
    ],
)
def test_ranges_are_single_and_bounded(header, expected):
    from label_studio_cortx.source.media import bounded_range

    assert bounded_range(header, 100) == expected


@pytest.mark.parametrize(
    "header, expected",
    [
        ("Mon, 07 Dec 2026 01:02:03 GMT", "Mon, 07 Dec 2026 01:02:03 GMT"),  # S3's form: passed on as sent
        ("Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"),  # RFC 850's
        ("Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT"),  # asctime's
        ("Mon, 07 Dec 2026 01:02:03 +0100", "Mon, 07 Dec 2026 00:02:03 GMT"),
        ("Mon, 07 Dec 2026 01:02:03 GMT\r\nSet-Cookie: a=b", "Mon, 07 Dec 2026 01:02:03 GMT"),  # the rest dropped
        ("Mon, 07 Dec 2026 01:02:03 GMT ", "Mon, 07 Dec 2026 01:02:03 GMT"),
        ("2026-12-07T01:02:03Z", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_the_stores_last_modified_reaches_the_browser_as_an_http_date(header, expected):
    from label_studio_cortx.source.media import _last_modified

    assert _last_modified(header) == expected


def test_a_deleted_storage_stops_serving_once_its_row_is_read_again(api, user, image, monkeypatch):
    """The fast path keeps a storage row for a moment (a project's images share it); a deletion reaches it then."""
    _, storage, task = image
    monkeypatch.setattr(media_storages, "rows", media_storages.StorageRows(seconds=0.5))
    client = browser(user)
    path, cookie, app = link_path(client, task), session_cookie(client), media_gateway.wrap(Fallthrough())
    assert call(app, path, cookie)[0] == 200
    assert api.delete(f"/api/storages/cortx/{storage['id']}").status_code == 204
    time.sleep(0.6)
    assert call(app, path, cookie)[0] == FELL_THROUGH


def test_a_fault_in_the_fast_path_is_a_bare_500(user, image, monkeypatch):
    _, _, task = image
    client = browser(user)
    path, cookie = link_path(client, task), session_cookie(client)

    def broken(*args, **kwargs):
        raise RuntimeError("internal detail that must not reach the browser")

    monkeypatch.setattr(media_gateway.media, "serve", broken)
    status, _, body = call(media_gateway.wrap(Fallthrough()), path, cookie)
    assert (status, body) == (500, b"")


def _storage_client(storage):
    from label_studio_cortx.models import CortxImportStorage

    return CortxImportStorage.objects.get(pk=storage["id"]).get_client()


def _first_send_fails(monkeypatch, client, failure: str, method: str) -> tuple[list, list]:
    """The client's next request fails as ``failure`` says (a dropped connection, a 503 reply); the calls of its
    botocore ``method`` (``get_object``, ``put_object``) are recorded and then reach the store for real."""
    from botocore.exceptions import ConnectionClosedError

    session = client._endpoint.http_session
    real_send, real_call, sent, fallbacks = session.send, getattr(client, method), [], []

    def failing(request):
        sent.append(request.url)
        if failure == "dropped":
            raise ConnectionClosedError(endpoint_url=request.url)
        answer = real_send(request)
        assert answer.content is not None  # the store's reply read, so its connection goes back to the pool
        answer.status_code = 503
        return answer

    def botocores(**params):
        fallbacks.append(params)
        monkeypatch.setattr(session, "send", real_send)  # botocore's own attempt reaches the store
        return real_call(**params)

    monkeypatch.setattr(session, "send", failing)
    monkeypatch.setattr(client, method, botocores)
    return sent, fallbacks


@pytest.mark.parametrize("failure", ["dropped", "503"])
def test_a_failed_media_get_is_handed_to_get_object_and_its_retries(image, failure, monkeypatch):
    """The media GET without botocore's pipeline has no retries of its own: a failure botocore would retry (a
    connection the store dropped, a 5xx) goes to the client's ``get_object``, so the image is served, or fails,
    exactly as before; a 4xx is final and raised at once."""
    from botocore.exceptions import ClientError

    from label_studio_cortx.connection.client import stream_object

    bucket, storage, _ = image
    client = _storage_client(storage)
    sent, fallbacks = _first_send_fails(monkeypatch, client, failure, "get_object")
    streamed = stream_object(client, bucket, "img/a cat.png", {"Range": "bytes=0-9"})
    assert (streamed.status, streamed.body.read()) == (206, BODY[:10])
    assert len(sent) == 1 and fallbacks == [{"Bucket": bucket, "Key": "img/a cat.png", "Range": "bytes=0-9"}]

    fallbacks.clear()
    with pytest.raises(ClientError) as missing:
        stream_object(client, bucket, "img/none.png")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey" and fallbacks == []


def test_a_virtual_host_client_streams_through_get_object(image, cortx_s3, monkeypatch):
    """Whether a bucket can be a host name is botocore's decision (its endpoint rules): such clients keep it."""
    from label_studio_cortx.connection.client import ConnectionConfig, get_client, stream_object

    bucket, _, _ = image
    config = ConnectionConfig.build(
        cortx_s3.url,
        access_key_id=cortx_s3.access_key,
        secret_access_key=cortx_s3.secret_key,
        force_path_style=False,
    )
    client = get_client(config)
    calls = []
    real = client.get_object
    monkeypatch.setattr(client, "get_object", lambda **params: calls.append(params) or real(**params))
    whole = stream_object(client, bucket, "img/a cat.png")
    assert (whole.status, whole.body.read(), len(calls)) == (200, BODY, 1)
    etag = whole.headers["etag"]
    same = stream_object(client, bucket, "img/a cat.png", {"If-None-Match": etag, "Range": "bytes=0-3"})
    assert same.status == 304 and same.body.read() == b""
    assert calls[-1] == {"Bucket": bucket, "Key": "img/a cat.png", "IfNoneMatch": etag, "Range": "bytes=0-3"}


@pytest.mark.parametrize("failure", ["dropped", "503"])
def test_a_failed_export_put_is_handed_to_put_object_and_its_retries(image, cortx_s3, failure, monkeypatch):
    """The export's PUT without botocore's pipeline has no retries of its own: any failure goes to the client's
    ``put_object`` (botocore's retry policy, its errors), so an export fails or succeeds exactly as before."""
    from label_studio_cortx.connection.client import put_bytes

    bucket, storage, _ = image
    client = _storage_client(storage)
    sent, fallbacks = _first_send_fails(monkeypatch, client, failure, "put_object")
    put_bytes(client, bucket, "out/1.json", b'{"id": 1}', "application/json")
    assert len(sent) == 1 and [params["Key"] for params in fallbacks] == ["out/1.json"]
    assert cortx_s3.client().get_object(Bucket=bucket, Key="out/1.json")["Body"].read() == b'{"id": 1}'


def test_media_and_export_go_over_https_with_the_storages_ca_bundle(api, user, project, s3_https, trust):  # noqa: F811
    """The GET and the PUT without botocore's pipeline use the client's own TLS trust: the storage's CA bundle.
    Without it the store's certificate is not trusted, and the browser gets the 424 and nothing else."""
    from label_studio_cortx.connection.client import put_bytes
    from label_studio_cortx.models import CortxExportStorage, CortxImportStorage

    trust(s3_https)
    bucket = new_bucket(s3_https)
    put(s3_https, bucket, "img/a cat.png", BODY, content_type="image/png")
    storage = create_source(api, s3_https, bucket, project, prefix="img", use_blob_urls=True)
    sync(api, storage["id"])
    task = project.tasks.get()
    client = browser(user)
    path, cookie, app = link_path(client, task), session_cookie(client), media_gateway.wrap(Fallthrough())
    assert call(app, path, cookie)[::2] == (200, BODY)
    resolved = api.get(_resolve_url(task, task_url(task)))
    assert resolved.status_code == 200 and b"".join(resolved.streaming_content) == BODY
    target = create_target(api, s3_https, bucket, project, prefix="out/")
    exporter = CortxExportStorage.objects.get(pk=target["id"]).get_client()
    put_bytes(exporter, bucket, "out/1.json", b'{"id": 1}', "application/json")
    assert s3_https.client().get_object(Bucket=bucket, Key="out/1.json")["Body"].read() == b'{"id": 1}'

    CortxImportStorage.objects.filter(pk=storage["id"]).update(ca_bundle="")
    status, _, body = call(app, path, cookie)
    assert status == 424 and b"certificate" not in body.lower() and s3_https.url.encode() not in body


@pytest.mark.parametrize("status", [301, 307, 500])
def test_a_reply_that_is_not_an_object_is_a_424(status):
    """An endpoint that redirects (an HTTP front that sends everyone to HTTPS, say) or fails: the media GET raises
    as ``get_object`` would, and the browser gets the 424, not the foreign page."""
    import dataclasses
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from botocore.exceptions import ClientError

    from label_studio_cortx.connection.client import ConnectionConfig, get_client, stream_object
    from label_studio_cortx.source import media

    class Foreign(BaseHTTPRequestHandler):
        def do_GET(self):
            page = b"<html>internal sign-in page</html>"
            self.send_response(status)
            self.send_header("Location", "https://intranet.example/login")
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = ConnectionConfig.build(url, access_key_id="k", secret_access_key="s")
        client = get_client(
            dataclasses.replace(config, ssrf_guard=False, limits=dataclasses.replace(config.limits, max_attempts=1))
        )
        with pytest.raises(ClientError) as raised:
            stream_object(client, "bucket", "img/a.png")
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        storage = type("Storage", (), {"s3_endpoint": url, "pk": 1})()
        served = media.serve(storage, "s3://bucket/img/a.png", client=client)
        body = b"".join(served.body)
        assert served.status == 424 and b"sign-in" not in body and b"intranet" not in body
        assert "Location" not in dict(served.headers)
    finally:
        server.shutdown()


# --- API clients on /tasks/<id>/resolve/ ------------------------------------------------------------------------
def test_an_api_client_on_resolve_is_served_without_the_whole_middleware_stack(user, image, tokens):
    """A token, a JWT access token and X-Api-Key, on the task and the project route: Label Studio's authentication
    and the resolve view answer without Django's other middleware (the wrapped application is never called), with
    Range, the 304 and the headers of the full path; Label Studio's request context is cleared afterwards."""
    from core.current_request import CurrentContext

    _, _, task = image
    legacy, access = tokens
    url, inner = _resolve_url(task, task_url(task)), Fallthrough()
    app = media_gateway.wrap(inner)
    project_url = f"/projects/{task.project_id}/resolve/?{url.partition('?')[2]}"
    for path, headers in (
        (url, {"authorization": f"Token {legacy}"}),
        (url, {"authorization": f"Bearer {access}"}),
        (url, {"x_api_key": legacy}),
        (project_url, {"authorization": f"Token {legacy}"}),
        (url.replace("/resolve/", "/presign/"), {"authorization": f"Bearer {access}"}),  # Label Studio's old name
        (url, {"authorization": f"Token {legacy}", "cookie": "sessionid=from-an-earlier-reply"}),  # an SDK's jar
    ):
        status, answer, body = call(app, path, **headers)
        assert (status, body) == (200, BODY), (path, headers)
        assert answer["Content-Security-Policy"] == "sandbox" and answer["X-Content-Type-Options"] == "nosniff"
        assert answer["Referrer-Policy"] == "same-origin"  # Django's SecurityMiddleware is on this path
        assert CurrentContext.get_user() is None
    status, answer, body = call(app, url, range="bytes=0-9", authorization=f"Token {legacy}")
    assert (status, body, answer["Content-Range"]) == (206, BODY[:10], f"bytes 0-9/{len(BODY)}")
    status, _, body = call(app, url, if_none_match=answer["ETag"], authorization=f"Bearer {access}")
    assert (status, body) == (304, b"")
    assert inner.calls == 0


def member_token(user, name: str) -> str:
    """The API token of a new member of the user's organization (their active one), named ``name``."""
    from rest_framework.authtoken.models import Token
    from users.models import User

    member = User.objects.create_user(email=f"{name}@example.com", password=f"{name}-pass-123", username=name)
    user.active_organization.add_user(member)
    member.active_organization = user.active_organization
    member.save()
    return Token.objects.get_or_create(user=member)[0].key


def test_an_api_client_refused_on_the_token_path_gets_label_studios_own_answer(user, image, tokens, settings):
    """Every 401 and 403 goes to Django after all, so Label Studio's whole stack answers it: a wrong token, a JWT
    that does not verify, a revoked member's token, legacy tokens switched off for the organization, a deactivated
    user. A session cookie with a token that fails is the full path's to decide (Label Studio's session
    authentication). HEAD and writes are not served here."""
    from django.utils import timezone
    from users.models import User

    _, _, task = image
    legacy, access = tokens
    url, inner = _resolve_url(task, task_url(task)), Fallthrough()
    app = media_gateway.wrap(inner)

    def full_path(**headers):
        extra = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
        return Client().get(url, **extra).status_code

    for headers in (
        {"authorization": "Token not-a-token"},
        {"authorization": f"Bearer {access[:-4]}AAAA"},
        {"authorization": "Basic b3duZXI6c2VjcmV0"},
        {"x_api_key": "nope"},
    ):
        calls = inner.calls
        assert call(app, url, **headers)[0] == FELL_THROUGH and inner.calls == calls + 1
        assert full_path(**headers) == 401

    # A browser session with a failing token: Label Studio's session authentication serves it on the full path.
    session = browser(user)
    assert call(app, url, session_cookie(session), authorization="Bearer nope")[0] == FELL_THROUGH
    served = session.get(url, HTTP_AUTHORIZATION="Bearer nope")
    assert served.status_code == 200 and b"".join(served.streaming_content) == BODY

    organization = user.active_organization
    other_token = member_token(user, "other")
    assert call(app, url, authorization=f"Token {other_token}")[0] == 200  # a member of the organization
    organization.members.filter(user__username="other").update(deleted_at=timezone.now())
    assert call(app, url, authorization=f"Token {other_token}")[0] == FELL_THROUGH
    assert full_path(authorization=f"Token {other_token}") == 403

    User.objects.filter(pk=user.pk).update(is_active=False)
    assert call(app, url, authorization=f"Token {legacy}")[0] == FELL_THROUGH
    assert full_path(authorization=f"Token {legacy}") == 401
    User.objects.filter(pk=user.pk).update(is_active=True)

    organization.jwt.legacy_api_tokens_enabled = False
    organization.jwt.save()
    assert call(app, url, authorization=f"Token {legacy}")[0] == FELL_THROUGH
    assert full_path(authorization=f"Token {legacy}") == 401
    assert call(app, url, authorization=f"Bearer {access}")[0] == 200  # JWT access tokens stay on

    calls = inner.calls
    assert call(app, url, method="HEAD", authorization=f"Bearer {access}")[0] == FELL_THROUGH
    assert call(app, url, method="POST", authorization=f"Bearer {access}")[0] == FELL_THROUGH
    assert call(app, url)[0] == FELL_THROUGH  # no credentials at all
    assert inner.calls == calls + 3


def test_an_api_clients_plain_request_skips_drfs_view_and_is_decided_as_the_view_decides(
    user, image, tokens, monkeypatch, caplog
):
    """On the token path a GET of the task route that the resolve view would simply stream from a CORTX storage is
    answered without DRF's view (``api.task_media_for_api_client``): an API token (any case of the keyword, extra
    spaces, X-Api-Key) and a JWT access token. Everything else goes to the view, which decides as before. Beside each
    case, the full path's answer (Django's whole stack and the view): the plain path serves nothing the view would
    not, and logs a legacy token's use as Label Studio does."""
    from django.utils import timezone
    from jwt_auth.models import JWTSettings
    from users.models import User

    from label_studio_cortx import access, api
    from label_studio_cortx.models import CortxImportStorage

    _, storage, task = image
    legacy, access_token = tokens
    url, app, views = _resolve_url(task, task_url(task)), media_gateway.wrap(Fallthrough()), []
    view_initial = api.CortxTaskResolveStorageUri.initial  # DRF's checks, before the view's handler

    def counted(view, request, *args, **kwargs):
        views.append(request.path)
        return view_initial(view, request, *args, **kwargs)

    monkeypatch.setattr(api.CortxTaskResolveStorageUri, "initial", counted)

    def decided(path: str = url, **headers: str) -> tuple[str, int, int]:
        """(who answered on the token path: plain, view or django; its status; the full path's status)"""
        seen = len(views)
        status = call(app, path, **headers)[0]
        who = "django" if status == FELL_THROUGH else "view" if len(views) > seen else "plain"
        full = Client().get(path, **{f"HTTP_{name.upper()}": value for name, value in headers.items()})
        return who, status, full.status_code

    with caplog.at_level(logging.INFO, logger="jwt_auth.auth"):
        assert decided(authorization=f"Token {legacy}") == ("plain", 200, 200)
    logged = [r for r in caplog.records if r.getMessage() == "Legacy token authentication used"]
    assert len(logged) == 2  # once for the plain path's answer, once for the full path's
    assert logged[0].user_id == user.pk and logged[0].organization_id == user.active_organization_id
    assert decided(authorization=f"token  {legacy} ") == ("plain", 200, 200)
    assert decided(x_api_key=legacy) == ("plain", 200, 200)
    assert decided(authorization=f"Bearer {access_token}") == ("plain", 200, 200)
    assert decided(authorization=f"Token {legacy}", accept="image/avif,image/webp,*/*;q=0.8") == ("plain", 200, 200)
    assert decided(authorization=f"Token {legacy}", range="bytes=0-9") == ("plain", 206, 206)
    # What DRF's view does differently, the view does: its JSON renderer refuses an Accept it cannot meet.
    assert decided(authorization=f"Token {legacy}", accept="image/png") == ("view", 406, 406)
    assert decided(authorization=f"Token {legacy}", accept="") == ("view", 406, 406)
    assert decided(authorization=f"Token {legacy}", accept="*/JSON; q=0.1") == ("plain", 200, 200)
    assert decided(f"{url}&format=json", authorization=f"Token {legacy}") == ("view", 200, 200)
    for header in ("Token nope", f"Token {legacy} {legacy}", "Token", f"Token {legacy}x", f"Token {'x' * 41}"):
        assert decided(authorization=header) == ("django", FELL_THROUGH, 401), header
    assert decided(authorization=f"Token {legacy[:-1]}\x01") == ("django", FELL_THROUGH, 401)
    assert decided(authorization=f"Bearer {access_token[:-4]}AAAA") == ("django", FELL_THROUGH, 401)
    # A JWT's user is read only when the view needs it (``request.user`` is lazy on the token path).
    built = []
    monkeypatch.setattr(
        access, "user_with_organization", lambda pk, read=access.user_with_organization: built.append(pk) or read(pk)
    )
    assert decided(authorization=f"Bearer {access_token}") == ("plain", 200, 200) and built == []
    assert decided(f"{url}&format=json", authorization=f"Bearer {access_token}") == ("view", 200, 200)
    assert built == [user.pk]  # read when the view needed it (the full path runs Label Studio's own middleware)

    owner = access.token_owner(legacy)
    assert owner == (user.pk, True, user.active_organization_id, True) and access.token_owner("nope") is None
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert access.token_owner(legacy).is_active is False
    assert decided(authorization=f"Token {legacy}") == ("django", FELL_THROUGH, 401)
    assert access.jwt_owner(user.pk).is_active is False
    assert decided(authorization=f"Bearer {access_token}") == ("django", FELL_THROUGH, 401)
    User.objects.filter(pk=user.pk).update(is_active=True)

    organization = user.active_organization
    members_token = member_token(user, "member")
    assert decided(authorization=f"Token {members_token}") == ("plain", 200, 200)
    organization.members.filter(user__username="member").update(deleted_at=timezone.now())  # revoked
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jwt_auth.auth"):
        assert decided(authorization=f"Token {members_token}") == ("django", FELL_THROUGH, 403)
    assert len([r for r in caplog.records if r.getMessage() == "Legacy token authentication used"]) == 2  # the views'

    JWTSettings.objects.filter(organization=organization).update(legacy_api_tokens_enabled=False)
    assert decided(authorization=f"Token {legacy}") == ("django", FELL_THROUGH, 401)
    assert decided(authorization=f"Bearer {access_token}") == ("plain", 200, 200)
    monkeypatch.setenv(api._JWT_FLAG, "false")  # Label Studio's flag off: no phase-out, legacy tokens accepted
    assert decided(authorization=f"Token {legacy}") == ("plain", 200, 200)
    monkeypatch.delenv(api._JWT_FLAG)
    JWTSettings.objects.filter(organization=organization).delete()  # Label Studio makes them, legacy tokens off
    assert access.token_owner(legacy).legacy_tokens_enabled is None
    assert decided(authorization=f"Token {legacy}") == ("django", FELL_THROUGH, 401)
    JWTSettings.objects.filter(organization=organization).update(legacy_api_tokens_enabled=True)
    JWTSettings.objects.filter(organization=organization).update(api_tokens_enabled=False)  # JWTs off
    assert decided(authorization=f"Bearer {access_token}") == ("django", FELL_THROUGH, 401)
    JWTSettings.objects.filter(organization=organization).delete()  # decided on the instances; Label Studio makes them
    assert access.jwt_owner(user.pk).api_tokens_enabled is None
    assert decided(authorization=f"Bearer {access_token}") == ("plain", 200, 200)
    assert JWTSettings.objects.get(organization=organization).api_tokens_enabled is True
    JWTSettings.objects.filter(organization=organization).update(legacy_api_tokens_enabled=True)

    CortxImportStorage.objects.filter(pk=storage["id"]).update(presign=True)  # Label Studio's presign redirect
    who, status, full = decided(authorization=f"Token {legacy}")
    assert (who, status in (302, 303), full) == ("plain", True, status)
    CortxImportStorage.objects.filter(pk=storage["id"]).update(presign=False)
    elsewhere = _resolve_url(task, "s3://another-bucket/a.png")
    assert decided(elsewhere, authorization=f"Token {legacy}")[::2] == ("view", 404)  # Label Studio's resolver
    assert decided(elsewhere, authorization=f"Bearer {access_token}")[::2] == ("view", 404)
    assert all(path.endswith("/resolve/") for path in views)


def test_a_jwts_owner_shows_label_studios_feature_flags_what_its_user_would(user, tokens):
    """The token path decides a JWT on ``access.jwt_owner`` (no model instances): Label Studio's ``get_user_repr``, the
    feature flags' view of a user, gives the same for it as for the user; a user deleted since is nobody."""
    from core.feature_flags.utils import get_user_repr
    from django.contrib.auth.models import AnonymousUser

    from label_studio_cortx import access, api

    owner = access.jwt_owner(user.pk)
    assert (owner.user_id, owner.email, owner.organization_id) == (user.pk, user.email, user.active_organization_id)
    assert owner.creator_email == user.active_organization.created_by.email and owner.api_tokens_enabled is True
    assert get_user_repr(api._FlagUser.of(owner)) == get_user_repr(user)
    assert (
        access.jwt_owner(user.pk + 1000) is None and access.jwt_owner("x") is None and access.jwt_owner(2**63) is None
    )
    assert isinstance(api._jwt_user(user.pk + 1000), AnonymousUser) and api._jwt_user(user.pk).pk == user.pk


def test_a_token_is_checked_with_its_user_and_organization_in_one_query(user, image, tokens):
    """Label Studio's token authentication reads the token's user, then the user's organization, its creator and its
    JWT settings: on the resolve views one query reads them all, and the checks stay Label Studio's (an organization
    without JWT settings gets them created, and legacy tokens are then off, as Label Studio's default)."""
    from django.test.utils import CaptureQueriesContext
    from jwt_auth.models import JWTSettings

    _, _, task = image
    legacy, _ = tokens
    url, app = _resolve_url(task, task_url(task)), media_gateway.wrap(Fallthrough())
    with CaptureQueriesContext(connection) as queries:
        assert call(app, url, authorization=f"Token {legacy}")[0] == 200
    alone = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "htx_user" not in q["sql"]]
    assert not [sql for sql in alone if '"organization" WHERE' in sql or '"jwt_auth_jwtsettings" WHERE' in sql]
    with CaptureQueriesContext(connection) as queries:
        assert Client().get(url, HTTP_AUTHORIZATION=f"Token {legacy}").status_code == 200  # the full path too
    assert not [q for q in queries if '"jwt_auth_jwtsettings" WHERE' in q["sql"]]

    JWTSettings.objects.filter(organization=user.active_organization).delete()
    assert Client().get(url, HTTP_AUTHORIZATION=f"Token {legacy}").status_code == 401
    assert JWTSettings.objects.get(organization=user.active_organization).legacy_api_tokens_enabled is False


def test_the_access_rule_is_label_studios_own(user, image):
    """``access.task_access`` answers as Label Studio's ``Task.has_permission`` does, for a member, a revoked member,
    a user of another organization and a user without one; a task that does not exist, or an id no database holds,
    is None."""
    from django.utils import timezone
    from organizations.models import Organization
    from tasks.models import Task
    from users.models import User

    from label_studio_cortx import access

    _, _, task = image
    organization = user.active_organization
    member, revoked_member, stranger, loner = (
        User.objects.create_user(email=f"{name}@example.com", password="pass-123-pass", username=name)
        for name in ("member", "revoked", "stranger", "loner")
    )
    for person in (member, revoked_member):
        organization.add_user(person)
    organization.members.filter(user=revoked_member).update(deleted_at=timezone.now())
    elsewhere = Organization.create_organization(created_by=stranger, title="elsewhere")
    stranger.active_organization = elsewhere
    stranger.save()
    answers = {}
    for person in (user, member, revoked_member, stranger, loner):
        found, permitted = access.task_access(task.id, person.pk)
        assert (found.id, found.project_id, found.project.organization_id) == (
            task.id,
            task.project_id,
            task.project.organization_id,
        )
        answers[person.username] = permitted
        assert permitted is Task.objects.get(pk=task.id).has_permission(person), person.username
    assert answers["revoked"] is False and answers["member"] is True
    assert access.revoked(revoked_member.pk, organization.pk) and not access.revoked(member.pk, organization.pk)
    assert access.task_access(task.id + 1000, user.pk) is None
    assert access.task_access(2**63, user.pk) is None


def test_a_task_id_beyond_the_databases_integers_is_a_404(user, image, tokens):
    """Django's URL converter takes any digits: an id no database integer holds is a task that does not exist, on the
    full path of /resolve/ (the token path's route takes at most 18 digits)."""
    legacy, _ = tokens
    for task_id in (2**63, 10**30):
        answer = Client().get(f"/tasks/{task_id}/resolve/?fileuri=eA", HTTP_AUTHORIZATION=f"Token {legacy}")
        assert answer.status_code == 404


def test_both_fast_paths_are_off_when_an_admin_adds_middleware(user, image, tokens, settings):
    """An admin's own middleware (an IP allowlist, an audit log) must see every media request: with anything in
    MIDDLEWARE the fast paths were not reviewed against, links and tokens both go through Django."""
    _, _, task = image
    legacy, _ = tokens
    client = browser(user)
    path, cookie, url = link_path(client, task), session_cookie(client), _resolve_url(task, task_url(task))
    app = media_gateway.wrap(Fallthrough())
    assert call(app, path, cookie)[0] == 200 and call(app, url, authorization=f"Token {legacy}")[0] == 200
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "audit.middleware.AuditLog"]
    assert call(app, path, cookie)[0] == FELL_THROUGH
    assert call(app, url, authorization=f"Token {legacy}")[0] == FELL_THROUGH


def test_resolve_keeps_storage_rows_until_a_change_or_their_seconds(api, user, image, tokens, monkeypatch):
    """``/resolve/`` keeps a project's storage rows and clients (``media_storages``): a change saved in this process
    is seen by the next request, one made by another process (here a queryset update, which sends no signal) once
    the rows are read again."""
    from label_studio_cortx.models import CortxImportStorage

    monkeypatch.setattr(media_storages, "rows", media_storages.StorageRows(seconds=0.5))
    _, storage, task = image
    legacy, _ = tokens
    url, app = _resolve_url(task, task_url(task)), media_gateway.wrap(Fallthrough())
    assert call(app, url, authorization=f"Token {legacy}")[0] == 200
    CortxImportStorage.objects.filter(pk=storage["id"]).update(presign=True)
    assert call(app, url, authorization=f"Token {legacy}")[0] == 200
    time.sleep(0.6)
    status, headers, _ = call(app, url, authorization=f"Token {legacy}")
    assert status in (302, 303) and "X-Amz-Signature=" in headers["Location"]  # Label Studio's presign redirect
    assert api.patch(f"/api/storages/cortx/{storage['id']}", {"presign": False}, format="json").status_code == 200
    assert call(app, url, authorization=f"Token {legacy}")[::2] == (200, BODY)
    assert api.delete(f"/api/storages/cortx/{storage['id']}").status_code == 204
    status, _, body = call(app, url, authorization=f"Token {legacy}")  # no storage resolves it: Label Studio's answer
    full = Client().get(url, HTTP_AUTHORIZATION=f"Token {legacy}")
    assert (status, body) == (404, full.content) and full.status_code == 404


def test_a_row_read_before_a_change_is_not_kept_after_it(image, monkeypatch):
    """A request that read a storage's row just before a save or delete (``forget``) must not keep the old row for
    the next two seconds: the next request reads it again."""
    _, storage, task = image
    rows, real, reads = media_storages.StorageRows(seconds=60), media_storages._entry, []

    def entry(row):
        reads.append(row.pk)
        if len(reads) == 1:
            rows.forget()  # the storage is saved while this first request reads it
        return real(row)

    monkeypatch.setattr(media_storages, "_entry", entry)
    for read in (rows.get, lambda _: rows.of_project(task.project_id)):
        reads.clear()
        assert read(storage["id"]) and read(storage["id"]) and read(storage["id"])
        assert reads == [storage["id"], storage["id"]]  # read again once after the change, then kept


# --- prepared statements on PostgreSQL (label_studio_cortx.prepared) -------------------------------------------
def _prepared() -> dict[str, int]:
    """The statements prepared on this connection's server session, with how often each ran prepared."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return dict(cursor.fetchall())


def _images_on_each_path(user, image, tokens):
    """``images(times)``: the image served ``times`` times on each media path through the WSGI app: an API token and
    a JWT access token on ``/resolve/``, a media link with the browser's session."""
    _, _, task = image
    legacy, access_token = tokens
    url, app = _resolve_url(task, task_url(task)), media_gateway.wrap(Fallthrough())
    client = browser(user)
    path, cookie = link_path(client, task), session_cookie(client)

    def images(times: int) -> None:
        for _ in range(times):
            assert call(app, url, authorization=f"Token {legacy}")[:3:2] == (200, BODY)
            assert call(app, url, authorization=f"Bearer {access_token}")[:3:2] == (200, BODY)
            assert call(app, path, cookie)[:3:2] == (200, BODY)

    return images


@pytest.mark.django_db(transaction=True)  # autocommit, as a web server's connection
def test_the_media_paths_statements_are_prepared_on_postgresql(user, image, tokens, settings, caplog):
    """With CORTX_DB_PREPARED_STATEMENTS, what an API client's image (a token, a JWT access token) and a media link
    repeat is prepared on the connection once it repeats and run prepared from then on; nothing else Label Studio
    sends is; off (Django's default), nothing is. When the server session lost them (a pooler in transaction mode
    gave the connection another one) the statement is sent again unprepared and the image is served."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    from tasks.models import Task

    _, _, task = image
    images = _images_on_each_path(user, image, tokens)
    settings.CORTX_DB_PREPARED_STATEMENTS = False
    images(8)
    assert _prepared() == {}

    settings.CORTX_DB_PREPARED_STATEMENTS = True
    images(8)
    prepared = _prepared()
    assert [sql for sql in prepared if 'FROM "authtoken_token"' in sql]  # the token's query
    assert [sql for sql in prepared if '"organizations_organizationmember"' in sql]  # the access statement
    assert [sql for sql in prepared if 'FROM "htx_user" u' in sql]  # the JWT's user
    assert [sql for sql in prepared if 'FROM "htx_user" WHERE' in sql]  # the session's user
    assert all(runs > 0 for runs in prepared.values())
    raw = connection.connection
    assert (raw.cursor_factory.__name__, raw.prepare_threshold) == ("Cursor", None)  # Django's, outside the paths
    for _ in range(8):
        Task.objects.filter(pk=task.pk).exists()
    assert _prepared().keys() == prepared.keys()

    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # the server session forgets them (a pooler's next session); psycopg does not
    with caplog.at_level(logging.WARNING, logger="label_studio_cortx.prepared"):
        images(1)  # each path's statements sent again, unprepared
    assert "PgBouncer 1.21+" in caplog.text
    images(8)
    assert _prepared().keys() == prepared.keys()


@pytest.mark.django_db(transaction=True)  # autocommit, as a web server's connection
def test_a_persistent_connections_health_is_checked_without_a_round_trip(user, image, tokens, monkeypatch):
    """With persistent connections and Django's health checks (``CORTX_DB_CONN_MAX_AGE``), the media paths send no
    ``SELECT 1`` on a connection the server still holds; when the server ended the connection (a restart, a
    terminated backend), Django's own check runs, the connection is replaced and the image is served."""
    if connection.vendor != "postgresql":
        pytest.skip("the health check without a round trip is PostgreSQL's")
    import select

    import psycopg
    from django.db import close_old_connections

    images = _images_on_each_path(user, image, tokens)

    # What a web server's request does to its connection (the autouse fixture keeps the test's connection instead).
    monkeypatch.setattr(media_gateway, "close_old_connections", close_old_connections)
    monkeypatch.delattr(connection, "close_if_unusable_or_obsolete")  # Django's own again
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    connection.close()  # the next connection reads both settings
    checks = []
    real_check = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real_check())

    images(3)
    assert checks == [] and connection.health_check_enabled
    backend = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])
    select.select([connection.connection.fileno()], [], [], 10)  # the server's goodbye arrives
    images(2)  # the first image's request finds the server's goodbye: Django's check, a new connection
    assert checks == [1] and connection.connection.info.backend_pid != backend


def test_a_tokens_user_is_read_as_select_related_reads_it(user, tokens):
    """``access.token_user`` gives the instances the ORM's ``select_related`` gives (every column, converted as
    Django converts it on this database), for a user with an organization, an organization without JWT settings,
    and a user without an organization; an unknown key is None."""
    from jwt_auth.models import JWTSettings
    from rest_framework.authtoken.models import Token
    from users.models import User

    from label_studio_cortx import access

    def fields(instance) -> dict | None:
        return (
            None
            if instance is None
            else {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}
        )

    def graph(token) -> list:
        organization = token.user.active_organization
        related = [None, None] if organization is None else [organization.created_by, organization.jwt]
        return [fields(item) for item in (token, token.user, organization, *related)]

    def the_orms(key: str):
        return Token.objects.select_related(
            "user__active_organization__created_by", "user__active_organization__jwt"
        ).get(key=key)

    user.custom_hotkeys = {"annotation:submit": {"key": "ctrl+enter", "active": True}}
    user.save()
    legacy, _ = tokens
    with CaptureQueriesContext(connection) as queries:
        found = access.token_user(legacy)
        assert found.user.active_organization.jwt.legacy_api_tokens_enabled is True
        assert found.user.active_organization.created_by.pk == user.pk
    assert len([query for query in queries if not query["sql"].startswith(("SAVEPOINT", "RELEASE"))]) == 1
    assert graph(found) == graph(the_orms(legacy))
    assert found.user.custom_hotkeys == user.custom_hotkeys and found.user.is_active is True

    JWTSettings.objects.filter(organization=user.active_organization).delete()
    found = access.token_user(legacy)
    assert "jwt" not in found.user.active_organization._state.fields_cache  # Label Studio's field creates them
    assert found.user.active_organization.jwt.legacy_api_tokens_enabled is False
    assert graph(found) == graph(the_orms(legacy))

    loner = User.objects.create_user(email="loner@example.com", password="pass-123-pass", username="loner")
    key = Token.objects.get_or_create(user=loner)[0].key
    found = access.token_user(key)
    assert found.user.active_organization is None and graph(found) == graph(the_orms(key))
    assert access.token_user("0" * 40) is None


class OtherBackend(ModelBackend):
    """An installed authentication backend other than Django's ModelBackend (an admin's own)."""


def test_the_fast_path_accepts_a_session_as_djangos_get_user_does(user, image, settings):
    """A ModelBackend session: the user's row and membership in one statement, the user active and the session's
    password hash the current one. A session without the hash, or naming a backend that is not installed, goes to
    the full path; one of another installed backend is asked of Django's ``get_user``."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY

    _, _, task = image
    client = browser(user)
    path, app = link_path(client, task), media_gateway.wrap(Fallthrough())

    def with_session(**changes) -> int:
        session = browser(user).session
        for key, value in changes.items():
            if value is None:
                session.pop(key)
            else:
                session[key] = value
        session.save()
        return call(app, path, session.session_key)[0]

    with CaptureQueriesContext(connection) as queries:
        assert with_session() == 200
    users = [query["sql"] for query in queries if 'FROM "htx_user"' in query["sql"]]
    assert len(users) == 1 and '"organizations_organizationmember"' in users[0]

    assert with_session(**{HASH_SESSION_KEY: None}) == FELL_THROUGH
    assert with_session(**{HASH_SESSION_KEY: "0" * 64}) == FELL_THROUGH
    assert with_session(**{BACKEND_SESSION_KEY: "somewhere.else.Backend"}) == FELL_THROUGH
    other = f"{OtherBackend.__module__}.OtherBackend"
    assert with_session(**{BACKEND_SESSION_KEY: other}) == FELL_THROUGH  # not installed
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, other]
    assert with_session(**{BACKEND_SESSION_KEY: other}) == 200
    assert with_session(**{BACKEND_SESSION_KEY: other, HASH_SESSION_KEY: "0" * 64}) == FELL_THROUGH


def test_a_jwt_is_checked_with_its_user_and_organization_in_one_statement(user, image, tokens):
    """Label Studio's JWT middleware reads the token's user twice, then the organization, its creator and its JWT
    settings: on the token path one statement reads them, with simplejwt's and Label Studio's checks (an inactive or
    deleted user, API tokens switched off for the organization) refused as the full stack refuses them."""
    from users.models import User

    from label_studio_cortx import access

    _, _, task = image
    _, access_token = tokens
    url, app = _resolve_url(task, task_url(task)), media_gateway.wrap(Fallthrough())
    call(app, url, authorization=f"Bearer {access_token}")
    with CaptureQueriesContext(connection) as queries:
        assert call(app, url, authorization=f"Bearer {access_token}")[:3:2] == (200, BODY)
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len([sql for sql in reads if 'FROM "htx_user"' in sql]) == 1, reads
    assert not [sql for sql in reads if 'FROM "organization"' in sql or 'FROM "jwt_auth_jwtsettings"' in sql]

    found = access.user_with_organization(user.pk)
    assert found.active_organization.jwt.api_tokens_enabled is True and found.email == user.email
    assert access.user_with_organization("not a number") is None and access.user_with_organization(2**63) is None

    def full_path() -> int:
        return Client().get(url, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code

    User.objects.filter(pk=user.pk).update(is_active=False)
    assert call(app, url, authorization=f"Bearer {access_token}")[0] == FELL_THROUGH and full_path() == 401
    User.objects.filter(pk=user.pk).update(is_active=True)
    jwt = user.active_organization.jwt
    jwt.api_tokens_enabled = False
    jwt.save()
    assert call(app, url, authorization=f"Bearer {access_token}")[0] == FELL_THROUGH and full_path() == 401
    jwt.api_tokens_enabled = True
    jwt.save()
    assert call(app, url, authorization=f"Bearer {access_token}")[0] == 200
    user.delete()
    assert call(app, url, authorization=f"Bearer {access_token}")[0] == FELL_THROUGH and full_path() == 401


def test_the_token_paths_csp_is_label_studios_built_once_per_settings(user, image, tokens, settings, monkeypatch):
    """The token path's report-only policy is the header Label Studio's CSP middleware gives the full path; it is built
    once, built again after a CSP_ setting changes, and built for a response or request with its own CSP parts."""
    from csp.utils import build_policy
    from django.http import HttpResponse
    from django.test import RequestFactory

    from label_studio_cortx import api

    _, _, task = image
    legacy, _ = tokens
    url, app = _resolve_url(task, task_url(task)), media_gateway.wrap(Fallthrough())
    header = "Content-Security-Policy-Report-Only"
    built = []
    monkeypatch.setattr(api, "build_policy", lambda **parts: built.append(parts) or build_policy(**parts))
    api._settings_policy.cache_clear()

    def full_path() -> str:
        return Client().get(url, HTTP_AUTHORIZATION=f"Token {legacy}")[header]

    answers = [call(app, url, authorization=f"Token {legacy}") for _ in range(3)]
    assert {a[1][header] for a in answers} == {full_path()} and len(built) == 1
    assert answers[0][1]["Content-Security-Policy"] == "sandbox"  # the object's own policy stays
    settings.CSP_IMG_SRC = ("'self'", "https://images.example")
    status, answer, _ = call(app, url, authorization=f"Token {legacy}")
    assert status == 200 and "img-src 'self' https://images.example" in answer[header] and len(built) == 2
    assert answer[header] == full_path()

    middleware = api.CspMiddlewareWithPolicyKept(lambda request: HttpResponse())
    request, response = RequestFactory().get("/"), HttpResponse()
    response._csp_update = {"img-src": "https://updated.example"}
    assert "https://updated.example" in middleware.build_policy(request, response)
    request._csp_nonce = "bm9uY2U="
    assert "'nonce-bm9uY2U='" in middleware.build_policy(request, HttpResponse())
    assert "https://updated.example" not in middleware.build_policy(RequestFactory().get("/"), HttpResponse())
