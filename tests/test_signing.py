"""``connection.signing``: the direct GET's and PUT's SigV4 headers are botocore's own, byte for byte.

Every case is signed twice at one fixed instant: by the client's own signer (``RequestSigner.sign``, what the
direct requests used before) and by ``signing.headers``; the requests must be identical. The stores' side (the
signature accepted, a wrong secret refused, every key of the corpus) is in tests/test_real_stores.py and
tests/test_media_links.py, which send these requests to moto, SeaweedFS, Ceph RGW and the CORTX filter.
"""

from __future__ import annotations

import datetime
from unittest import mock

import boto3
import botocore
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from label_studio_cortx.connection import client as client_factory
from label_studio_cortx.connection import signing
from label_studio_cortx.connection.config import botocore_config
from tests.test_real_stores import KEY_CORPUS

NOW = datetime.datetime(2026, 12, 7, 23, 59, 59, tzinfo=datetime.timezone.utc)
KEYS = (*KEY_CORPUS, "img/a.png", "keys/~tilde/(paren)!*'.png", "/leading//double.png")
ENDPOINTS = (
    "http://127.0.0.1:9000",
    "http://localhost",
    "https://s3.example.test",
    "https://s3.example.test:8443",
    "http://[::1]:8333",
    "https://[fd00::5]",
)


def _client(endpoint: str, region: str = "us-east-1", token: str | None = None, **config):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE0123",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        config=botocore_config().merge(Config(**config)) if config else botocore_config(),
    )


def _botocores(client, method: str, key: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    url = f"{client.meta.endpoint_url}/bucket-1/{percent_encode(key, safe='/~')}"
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    operation = "GetObject" if method == "GET" else "PutObject"
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        client._request_signer.sign(operation, request)
    return dict(request.prepare().headers.items())


def _leans(client, method: str, key: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    url = f"{client.meta.endpoint_url}/bucket-1/{percent_encode(key, safe='/~')}"
    added = signing.headers(client, method, url, headers, body, now=NOW.timestamp())
    assert added is not None
    return dict(AWSRequest(method=method, url=url, headers={**headers, **added}, data=body).prepare().headers.items())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("GET", {}, b""),
        ("GET", {"Range": "bytes=0-524287"}, b""),
        ("GET", {"If-None-Match": '"d41d8cd98f00b204e9800998ecf8427e"', "Range": "bytes=10-"}, b""),
        ("GET", {"Range": "  bytes=0-9  ", "X-Custom": "a   b\tc"}, b""),
        ("PUT", {"Content-Type": "application/json"}, b'{"id": 1, "result": []}'),
        ("PUT", {"Content-Type": "application/json; charset=utf-8"}, '{"é": "日本"}'.encode()),
        ("PUT", {"Content-Type": "application/octet-stream"}, b""),
    ],
)
def test_the_direct_requests_are_signed_as_botocore_signs_them(endpoint, method, headers, body):
    client = _client(endpoint)
    for key in KEYS:
        assert _leans(client, method, key, headers, body) == _botocores(client, method, key, headers, body), key


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "cortx-local", "default"])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////session+token="])
def test_regions_and_session_tokens_are_signed_as_botocore_signs_them(region, token):
    client = _client("http://127.0.0.1:9000", region=region, token=token)
    lean = _leans(client, "GET", "img/a.png", {"Range": "bytes=0-9"}, b"")
    assert lean == _botocores(client, "GET", "img/a.png", {"Range": "bytes=0-9"}, b"")
    assert (lean.get("X-Amz-Security-Token"), f"/{region}/s3/aws4_request" in lean["Authorization"]) == (token, True)


def test_the_signing_key_follows_the_day_and_the_credentials_the_client_has_now():
    """The derived key is kept per secret and day: a new day, or credentials rotated on the client (botocore reads
    them for every request), sign with the new ones."""
    client = _client("http://127.0.0.1:9000")
    first = _leans(client, "GET", "img/a.png", {}, b"")
    later = NOW + datetime.timedelta(seconds=1)
    with mock.patch("botocore.auth.get_current_datetime", return_value=later.replace(tzinfo=None)):
        request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket-1/img/a.png")
        client._request_signer.sign("GetObject", request)
    next_day = signing.headers(client, "GET", "http://127.0.0.1:9000/bucket-1/img/a.png", {}, now=later.timestamp())
    assert next_day == {name: request.headers[name] for name in next_day}
    assert next_day["X-Amz-Date"].startswith("20261208") and next_day["Authorization"] != first["Authorization"]

    client._request_signer._credentials = Credentials("AKIDROTATED000", "rotated-secret")
    rotated = _leans(client, "GET", "img/a.png", {}, b"")
    assert rotated == _botocores(client, "GET", "img/a.png", {}, b"")
    assert "Credential=AKIDROTATED000/" in rotated["Authorization"]


def test_what_it_does_not_sign_is_left_to_the_clients_signer():
    """Another signature version, no signing at all, or a header botocore would replace: None, and the client's own
    signer decides (``client._signed``), as before."""
    url = "http://127.0.0.1:9000/b/k"
    assert signing.headers(_client("http://127.0.0.1:9000", signature_version="s3"), "GET", url, {}) is None
    unsigned = _client("http://127.0.0.1:9000", signature_version=botocore.UNSIGNED)
    assert signing.headers(unsigned, "GET", url, {}) is None
    request = client_factory._signed(unsigned, "GetObject", "GET", "b", "k", {})
    assert "Authorization" not in request.headers
    client = _client("http://127.0.0.1:9000")
    for header in ("Authorization", "x-amz-date", "Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token"):
        assert signing.headers(client, "GET", url, {header: "x"}) is None
    assert signing.headers(client, "GET", url + "?versionId=1", {}) is None  # a query string: botocore's to sort


def test_the_plugins_clients_sign_their_direct_requests_here(settings):
    """What ``client._signed`` sends for the plugin's own clients: the lean signer's headers, never botocore's
    per-request signer."""
    settings.CORTX_TRUSTED_ENDPOINTS = ["http://127.0.0.1:9000"]
    config = client_factory.ConnectionConfig.build(
        "http://127.0.0.1:9000", access_key_id="AKIDEXAMPLE0123", secret_access_key="secret-key"
    )
    client = client_factory.get_client(config)
    with mock.patch.object(client._request_signer, "sign", side_effect=AssertionError("botocore's signer")):
        request = client_factory._signed(client, "GetObject", "GET", "bucket-1", "img/a b.png", {"Range": "bytes=0-9"})
    assert request.url == "http://127.0.0.1:9000/bucket-1/img/a%20b.png"
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE0123/")
    assert request.headers["Range"] == "bytes=0-9"
