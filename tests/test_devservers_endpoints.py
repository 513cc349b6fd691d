"""The real-S3 test endpoints themselves: moto with SigV4 auth, private-CA TLS, and the CORTX-profile proxy.

No Django and no database: these run with ``-p no:django`` as well as under the project's pytest-django setup.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, SSLError

from label_studio_cortx.devservers.cortx_filter import (
    CortxEndpoint,
    is_virtual_host,
    start_cortx_endpoint,
    start_cortx_filter,
)
from label_studio_cortx.devservers.moto_server import (
    BOOTSTRAP_REQUEST_COUNT,
    S3Endpoint,
    start_moto,
    unique_bucket_name,
)

# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def error_of(exc_info: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc_info.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def make_bucket(endpoint: S3Endpoint) -> str:
    name = unique_bucket_name("ep")
    endpoint.client().create_bucket(Bucket=name)
    return name


def raw_connection(endpoint: S3Endpoint, timeout: float = 10) -> http.client.HTTPConnection:
    if endpoint.https:
        ctx = ssl.create_default_context(cafile=endpoint.ca_path)
        return http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)


def raw_request(
    endpoint: S3Endpoint,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One unsigned request with exactly the given headers (Host included, if given)."""
    conn = raw_connection(endpoint)
    try:
        headers = dict(headers or {})
        skip_host = any(k.lower() == "host" for k in headers)
        conn.putrequest(method, target, skip_host=skip_host, skip_accept_encoding=True)
        if body is not None:
            headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def xml_code(body: bytes) -> str:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    return root.findtext("Code") or ""


def signed_headers(
    endpoint: S3Endpoint, method: str, target: str, body: bytes = b"", extra: dict[str, str] | None = None
) -> dict[str, str]:
    """SigV4 headers (payload hash included; ``extra`` headers signed too) for a request we then send by hand."""
    request = AWSRequest(method=method, url=endpoint.url + target, data=body, headers=extra or {})
    S3SigV4Auth(Credentials(endpoint.access_key, endpoint.secret_key), "s3", endpoint.region).add_auth(request)
    return dict(request.headers.items())


def default_checksum_client(endpoint: S3Endpoint) -> object:
    """A client with botocore's defaults for flexible checksums ("when_supported")."""
    return endpoint.client(
        config=Config(request_checksum_calculation="when_supported", response_checksum_validation="when_supported")
    )


@pytest.fixture(params=["cortx_s3", "cortx_s3_https"])
def cortx(request: pytest.FixtureRequest) -> CortxEndpoint:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["s3_http", "s3_https", "cortx_s3", "cortx_s3_https"])
def any_endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    return request.getfixturevalue(request.param)


# ---------------------------------------------------------------------------------------------------------------
# moto: authentication is real
# ---------------------------------------------------------------------------------------------------------------


def test_right_credentials_work(any_endpoint: S3Endpoint) -> None:
    client = any_endpoint.client()
    bucket = make_bucket(any_endpoint)
    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_wrong_secret_is_signature_mismatch(any_endpoint: S3Endpoint) -> None:
    client = any_endpoint.client(aws_secret_access_key=any_endpoint.secret_key + "x")
    with pytest.raises(ClientError) as exc_info:
        client.list_buckets()
    assert error_of(exc_info) == (403, "SignatureDoesNotMatch")


def test_unknown_key_is_invalid_access_key(any_endpoint: S3Endpoint) -> None:
    client = any_endpoint.client(aws_access_key_id="AKIAIOSFODNN7EXAMPLE")
    with pytest.raises(ClientError) as exc_info:
        client.list_buckets()
    assert error_of(exc_info) == (403, "InvalidAccessKeyId")


def test_bucket_operations_after_bootstrap_are_authenticated(s3_http: S3Endpoint) -> None:
    # The unauthenticated budget is exactly the bootstrap's three IAM calls: nothing is left for anyone else.
    assert BOOTSTRAP_REQUEST_COUNT == 3
    bucket = unique_bucket_name("anon")
    with pytest.raises(ClientError) as exc_info:
        s3_http.client(aws_secret_access_key="wrong").create_bucket(Bucket=bucket)
    assert error_of(exc_info) == (403, "SignatureDoesNotMatch")
    # moto answers a request without any Authorization header with a 500 (it cannot parse the missing header),
    # not the 403 a real store sends; what matters is that it is refused.
    status, _, _ = raw_request(s3_http, "PUT", f"/{bucket}")
    assert status >= 400
    assert bucket not in [b["Name"] for b in s3_http.client().list_buckets()["Buckets"]]
    iam = s3_http.client(
        "iam",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as exc_info:
        iam.create_user(UserName="intruder")
    assert exc_info.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_signature_covers_host_header(cortx_s3: CortxEndpoint) -> None:
    # The proxy forwards the client's Host unchanged; a request signed for another host must fail upstream.
    target = "/"
    headers = signed_headers(cortx_s3, "GET", target)
    assert raw_request(cortx_s3, "GET", target, headers)[0] == 200
    headers["Host"] = f"localhost:{cortx_s3.port}"  # allowed as path-style, but not what was signed
    status, _, body = raw_request(cortx_s3, "GET", target, headers)
    assert (status, xml_code(body)) == (403, "SignatureDoesNotMatch")


# ---------------------------------------------------------------------------------------------------------------
# TLS with a private CA
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s3_https", "cortx_s3_https"])
def test_https_needs_the_private_ca(name: str, request: pytest.FixtureRequest) -> None:
    endpoint: S3Endpoint = request.getfixturevalue(name)
    assert endpoint.url.startswith("https://127.0.0.1:")
    assert endpoint.ca_path and endpoint.ca_pem and "BEGIN CERTIFICATE" in endpoint.ca_pem
    with pytest.raises(SSLError):
        endpoint.client(verify=None).list_buckets()  # botocore's default bundle does not know our CA
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(endpoint.url, timeout=10)
    endpoint.client().list_buckets()  # verify=ca_path
    # The certificate is also valid for "localhost".
    endpoint.client(endpoint_url=endpoint.url.replace("127.0.0.1", "localhost")).list_buckets()


def test_each_https_endpoint_has_its_own_ca(s3_https: S3Endpoint, cortx_s3_https: CortxEndpoint) -> None:
    assert s3_https.ca_pem != cortx_s3_https.ca_pem
    with pytest.raises(SSLError):
        s3_https.client(verify=cortx_s3_https.ca_path).list_buckets()


# ---------------------------------------------------------------------------------------------------------------
# CORTX profile: what is refused
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "virtual"),
    [
        ("127.0.0.1:9000", False),
        ("localhost:9000", False),
        ("[::1]:9000", False),
        ("10.1.2.3", False),
        ("mybucket.localhost:9000", True),
        ("mybucket.127.0.0.1:9000", True),
        ("s3.example.com", True),
        (None, False),
    ],
)
def test_virtual_host_detection(host: str | None, virtual: bool) -> None:
    assert is_virtual_host(host) is virtual


@pytest.mark.parametrize("prefix", ["mybucket.localhost", "mybucket.127.0.0.1"])
def test_a_virtual_host_raw_request_rejected(cortx: CortxEndpoint, prefix: str) -> None:
    status, headers, body = raw_request(cortx, "GET", "/some/key", {"Host": f"{prefix}:{cortx.port}"})
    assert status == 400
    assert headers["content-type"] == "application/xml"
    assert xml_code(body) == "NotImplemented"
    assert b"Virtual-hosted-style" in body
    assert cortx.requests[-1].rule == "virtual-host"


def test_a_virtual_host_boto3_rejected(cortx_s3: CortxEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = make_bucket(cortx_s3)
    try:
        socket.getaddrinfo(f"{bucket}.localhost", cortx_s3.port)
    except socket.gaierror:
        # "<bucket>.localhost" does not resolve here (no systemd-resolved/nss-myhostname): resolve it ourselves.
        real = socket.getaddrinfo

        def resolve(host: str, *args: object, **kwargs: object) -> object:
            if isinstance(host, str) and host.endswith(".localhost"):
                host = "127.0.0.1"
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
    client = cortx_s3.client(
        endpoint_url=f"http://localhost:{cortx_s3.port}", config=Config(s3={"addressing_style": "virtual"})
    )
    mark = cortx_s3.mark()
    with pytest.raises(ClientError) as exc_info:
        client.list_objects_v2(Bucket=bucket)
    assert error_of(exc_info) == (400, "NotImplemented")
    (seen,) = cortx_s3.requests_since(mark)
    assert seen.host == f"{bucket}.localhost:{cortx_s3.port}"
    assert seen.rule == "virtual-host" and not seen.forwarded


def test_b_default_checksum_client_rejected(cortx: CortxEndpoint) -> None:
    bucket = make_bucket(cortx)
    default_client = default_checksum_client(cortx)
    mark = cortx.mark()
    with pytest.raises(ClientError) as exc_info:
        default_client.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert error_of(exc_info) == (400, "NotImplemented")
    (put,) = cortx.requests_since(mark)
    assert put.rule == "checksum" and put.checksum_headers
    if cortx.https:  # over TLS botocore streams the body with a CRC32 trailer
        assert put.headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    # The fix: checksums only "when_required" (the endpoint's default client config).
    cortx.client().put_object(Bucket=bucket, Key="k", Body=b"data")
    # Default response validation adds x-amz-checksum-mode to GETs, also refused.
    with pytest.raises(ClientError) as exc_info:
        default_client.get_object(Bucket=bucket, Key="k")
    assert error_of(exc_info) == (400, "NotImplemented")
    assert cortx.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert not cortx.requests[-1].checksum_headers


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "AAAAAA=="},
        {"x-amz-sdk-checksum-algorithm": "CRC32"},
        {"x-amz-trailer": "x-amz-checksum-crc32"},
        {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
        {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"},
    ],
)
def test_b_checksum_headers_rejected_raw(cortx_s3: CortxEndpoint, headers: dict[str, str]) -> None:
    status, _, body = raw_request(cortx_s3, "PUT", "/bucket/key", headers, body=b"xyz")
    assert (status, xml_code(body)) == (400, "NotImplemented")


def test_c_cors_rejected(cortx: CortxEndpoint) -> None:
    bucket = make_bucket(cortx)
    with pytest.raises(ClientError) as exc_info:
        cortx.client().get_bucket_cors(Bucket=bucket)
    assert error_of(exc_info) == (501, "NotImplemented")
    with pytest.raises(ClientError) as exc_info:
        cortx.client().put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]},
        )
    assert error_of(exc_info) == (501, "NotImplemented")
    status, _, body = raw_request(
        cortx,
        "OPTIONS",
        f"/{bucket}/key",
        {"Origin": "http://example.com", "Access-Control-Request-Method": "GET"},
    )
    assert (status, xml_code(body)) == (501, "NotImplemented")


def _add_content_md5(request: AWSRequest, **_: object) -> None:
    """The DeleteObjects work-around for CORTX v1: drop botocore's CRC32, send Content-MD5 instead."""
    for name in list(request.headers.keys()):
        if name.lower().startswith("x-amz-checksum-") or name.lower() == "x-amz-sdk-checksum-algorithm":
            del request.headers[name]
    body = request.body if isinstance(request.body, bytes) else request.body.encode()
    request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def test_d_delete_objects_needs_content_md5(cortx: CortxEndpoint) -> None:
    bucket = make_bucket(cortx)
    client = cortx.client()
    for key in ("a", "b"):
        client.put_object(Bucket=bucket, Key=key, Body=b"1")
    mark = cortx.mark()
    with pytest.raises(ClientError) as exc_info:
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    assert error_of(exc_info) == (400, "BadDigest")
    (seen,) = cortx.requests_since(mark)
    assert "content-md5" not in seen.headers and "x-amz-checksum-crc32" in seen.headers  # botocore >= 1.36

    fixed = cortx.client()
    fixed.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
    result = fixed.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b"]
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_d_delete_objects_md5_raw(cortx_s3: CortxEndpoint) -> None:
    bucket = make_bucket(cortx_s3)
    cortx_s3.client().put_object(Bucket=bucket, Key="a", Body=b"1")
    body = b"<Delete><Object><Key>a</Key></Object></Delete>"
    target = f"/{bucket}?delete"
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    headers = signed_headers(cortx_s3, "POST", target, body, {"Content-MD5": wrong})
    status, _, reply = raw_request(cortx_s3, "POST", target, headers, body)
    assert (status, xml_code(reply)) == (400, "BadDigest")
    # A correct Content-MD5 (and no flexible checksum) passes the proxy, and moto deletes the key.
    right = base64.b64encode(hashlib.md5(body).digest()).decode()
    headers = signed_headers(cortx_s3, "POST", target, body, {"Content-MD5": right})
    status, _, reply = raw_request(cortx_s3, "POST", target, headers, body)
    assert status == 200 and b"<Deleted>" in reply
    assert cortx_s3.requests[-1].forwarded


def test_e_presigned_urls_rejected(cortx: CortxEndpoint) -> None:
    bucket = make_bucket(cortx)
    client = cortx.client()
    client.put_object(Bucket=bucket, Key="k", Body=b"secret")
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    response = requests.get(url, verify=cortx.ca_path or True, timeout=10)
    assert response.status_code == 403
    assert xml_code(response.content) == "AccessDenied"
    # SigV2-style query authentication too.
    status, _, body = raw_request(cortx, "GET", f"/{bucket}/k?AWSAccessKeyId=x&Expires=1&Signature=abc")
    assert (status, xml_code(body)) == (403, "AccessDenied")


# ---------------------------------------------------------------------------------------------------------------
# CORTX profile: what is forwarded faithfully
# ---------------------------------------------------------------------------------------------------------------


def test_range_get_is_206(cortx: CortxEndpoint) -> None:
    bucket = make_bucket(cortx)
    client = cortx.client()
    data = bytes(range(256)) * 64
    client.put_object(Bucket=bucket, Key="r", Body=data)
    response = client.get_object(Bucket=bucket, Key="r", Range="bytes=1000-1999")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert response["ContentRange"] == f"bytes 1000-1999/{len(data)}"
    assert response["Body"].read() == data[1000:2000]
    assert cortx.requests[-1].headers["range"] == "bytes=1000-1999"
    assert cortx.requests[-1].status == 206


def test_head_object_through_filter(cortx_s3: CortxEndpoint) -> None:
    bucket = make_bucket(cortx_s3)
    client = cortx_s3.client()
    client.put_object(Bucket=bucket, Key="h", Body=b"12345", Metadata={"my_meta": "v"})
    head = client.head_object(Bucket=bucket, Key="h")
    assert head["ContentLength"] == 5
    with pytest.raises(ClientError) as exc_info:
        client.head_object(Bucket=bucket, Key="missing")
    assert error_of(exc_info)[0] == 404


def test_concurrent_gets_and_request_log(cortx: CortxEndpoint) -> None:
    bucket = make_bucket(cortx)
    client = cortx.client(config=Config(max_pool_connections=16))
    payloads = {f"obj-{i}": os.urandom(64 * 1024 + i) for i in range(16)}
    for key, data in payloads.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    mark = cortx.mark()
    barrier = threading.Barrier(16)

    def fetch(key: str) -> bytes:
        barrier.wait(timeout=10)
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = dict(zip(payloads, pool.map(fetch, payloads), strict=True))
    assert results == payloads

    log = cortx.requests_since(mark)
    assert len(log) == 16
    assert sorted(r.path for r in log) == sorted(f"/{bucket}/{key}" for key in payloads)
    assert all(r.method == "GET" and r.status == 200 and r.forwarded for r in log)
    assert all(r.host == f"127.0.0.1:{cortx.port}" for r in log)  # path-style
    assert not any(r.checksum_headers for r in log)
    assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in log)


@pytest.mark.parametrize(("name", "size_mb"), [("cortx_s3", 50), ("cortx_s3_https", 8)])
def test_large_put_get(name: str, size_mb: int, request: pytest.FixtureRequest) -> None:
    endpoint: CortxEndpoint = request.getfixturevalue(name)
    bucket = make_bucket(endpoint)
    client = endpoint.client()
    data = os.urandom(size_mb * 1024 * 1024)
    mark = endpoint.mark()
    client.put_object(Bucket=bucket, Key="big.bin", Body=data)
    assert endpoint.requests_since(mark)[0].headers.get("expect") == "100-continue"  # the proxy answered 100
    assert hashlib.sha256(client.get_object(Bucket=bucket, Key="big.bin")["Body"].read()).digest() == (
        hashlib.sha256(data).digest()
    )


def test_chunked_request_body_and_keep_alive(cortx_s3: CortxEndpoint) -> None:
    bucket = make_bucket(cortx_s3)
    pieces = [b"hello ", b"chunked ", os.urandom(300_000), b" world"]
    body = b"".join(pieces)
    target = f"/{bucket}/chunked.bin"
    conn = raw_connection(cortx_s3)
    try:
        conn.request("PUT", target, body=iter(pieces), headers=signed_headers(cortx_s3, "PUT", target, body))
        response = conn.getresponse()
        assert response.status == 200, response.read()
        response.read()
        first_socket = conn.sock
        # Same connection: a rejected request with a body (drained by the proxy) ...
        conn.request("PUT", target, body=b"abc", headers={"x-amz-checksum-crc32": "AAAAAA=="})
        response = conn.getresponse()
        assert (response.status, xml_code(response.read())) == (400, "NotImplemented")
        # ... and then a normal GET.
        conn.request("GET", target, headers=signed_headers(cortx_s3, "GET", target))
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == body
        assert conn.sock is first_socket  # keep-alive held across all three
    finally:
        conn.close()
    log = cortx_s3.requests[-3:]
    assert log[0].headers["transfer-encoding"] == "chunked"
    assert len({r.client for r in log}) == 1


# ---------------------------------------------------------------------------------------------------------------
# proxy mechanics against a stub upstream, and lifecycle
# ---------------------------------------------------------------------------------------------------------------


class _StubUpstream(BaseHTTPRequestHandler):
    """Answers with the framings moto never uses: chunked and close-delimited bodies."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"abc", b"defg", b"h" * 100_000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until-close")
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubUpstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_filter_reframes_upstream_bodies(stub_upstream: str) -> None:
    with start_cortx_filter(stub_upstream) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            for path, expected in (("/chunked", b"abcdefg" + b"h" * 100_000), ("/close", b"until-close")):
                conn.request("GET", path)
                response = conn.getresponse()
                assert response.status == 200
                assert response.getheader("Transfer-Encoding") == "chunked"  # re-chunked for keep-alive
                assert response.read() == expected
        finally:
            conn.close()
        assert [r.path for r in proxy.requests] == ["/chunked", "/close"]
        assert len({r.client for r in proxy.requests}) == 1


def test_upstream_down_is_503() -> None:
    with start_cortx_filter(f"http://127.0.0.1:{_closed_port()}") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            conn.request("GET", "/bucket/key")
            response = conn.getresponse()
            assert response.status == 503
            assert xml_code(response.read()) == "ServiceUnavailable"
        finally:
            conn.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_stop_is_clean() -> None:
    started = time.monotonic()
    with start_cortx_endpoint(https=True) as endpoint, start_moto() as other:
        assert endpoint.port != other.port and endpoint.upstream is not None
        upstream_port = endpoint.upstream.port
        endpoint.client().list_buckets()
        other.client().list_buckets()
        process = endpoint.process
        ca_path = endpoint.ca_path
        # An idle keep-alive connection must not hold up stop().
        idle = socket.create_connection((endpoint.host, endpoint.port), timeout=5)
    try:
        # Generous for a loaded CI machine; a stop held up by the idle connection would hang far longer.
        assert time.monotonic() - started < 60
        assert process is not None and process.returncode is not None  # reaped: no zombie
        assert other.process is not None and other.process.returncode is not None
        assert _refused(endpoint.host, endpoint.port)
        assert _refused("127.0.0.1", upstream_port)
        assert _refused("127.0.0.1", other.port)
        assert ca_path is not None and not os.path.exists(ca_path)  # temporary TLS material removed
        endpoint.stop()  # idempotent
    finally:
        idle.close()
