"""The fault-injecting TCP proxy and the tripwire listener (label_studio_cortx/devservers/fault_proxy.py).

Real boto3 clients talk to the authenticating moto server (``s3_http``) through the proxy. Timing is only ever
bounded from above, generously, so the tests hold on a loaded machine.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from label_studio_cortx.devservers.fault_proxy import (
    GARBAGE_MARKER,
    MODES,
    UNTRUSTED_BODY,
    FaultProxy,
    Listener,
    start_fault_proxy,
    start_listener,
)
from label_studio_cortx.devservers.moto_server import S3Endpoint, unique_bucket_name

# Small timeouts and a single retry, so each injected failure surfaces within a few seconds.
FAST = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}, s3={"addressing_style": "path"})
# For calls that must succeed (through ``pass``) while a fault on the same client must still show quickly: a
# little more slack for a loaded machine.
BRISK = FAST.merge(Config(connect_timeout=2, read_timeout=2))
# For calls that only ever go through ``pass``: no reason to risk a spurious timeout.
PATIENT = FAST.merge(Config(connect_timeout=10, read_timeout=60))
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def proxy(s3_http: S3Endpoint) -> Iterator[FaultProxy]:
    with start_fault_proxy(s3_http.host, s3_http.port) as fault_proxy:
        yield fault_proxy


def via(
    endpoint: S3Endpoint, fault_proxy: FaultProxy | Listener, config: Config = FAST, scheme: str = "http"
) -> BaseClient:
    """A client of ``endpoint``'s credentials that connects to the proxy (which it therefore also signs for)."""
    return endpoint.client(endpoint_url=f"{scheme}://{fault_proxy.host}:{fault_proxy.port}", config=config)


def raw_connect(server: FaultProxy | Listener, timeout: float = 10) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


def threads_of(server: FaultProxy | Listener) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(server.name + "-") and t.is_alive()]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def assert_closed_by_peer(sock: socket.socket, timeout: float = 10) -> None:
    """The proxy closed ``sock`` (FIN or RST) without sending anything."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        return
    assert data == b""


# ---------------------------------------------------------------------------------------------------------------
# each mode against a real S3 client
# ---------------------------------------------------------------------------------------------------------------


def test_pass_forwards_signed_requests_both_ways(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert proxy.mode == "pass"
    bucket = unique_bucket_name("fp")
    s3_http.client().create_bucket(Bucket=bucket)

    client = via(s3_http, proxy, PATIENT)
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    payload = bytes(range(256)) * 4096  # 1 MiB: several relay chunks in each direction
    client.put_object(Bucket=bucket, Key="blob", Body=payload)
    assert client.get_object(Bucket=bucket, Key="blob")["Body"].read() == payload
    assert proxy.connections >= 1


def test_pass_rejects_a_wrong_secret_like_the_upstream(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    """Bytes are forwarded untouched: the upstream still verifies the signature."""
    client = s3_http.client(endpoint_url=proxy.url, config=PATIENT, aws_secret_access_key="wrong-secret")
    with pytest.raises(ClientError) as caught:
        client.list_buckets()
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_refuse_gives_endpoint_connection_error(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.mode = "refuse"
    accepted = proxy.connections
    with pytest.raises(EndpointConnectionError):
        via(s3_http, proxy).list_buckets()
    with pytest.raises(ConnectionRefusedError):
        raw_connect(proxy, timeout=5).close()
    assert proxy.connections == accepted
    assert proxy.port == port


def test_reset_gives_a_connection_error(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    proxy.mode = "reset"
    with pytest.raises((HTTPClientError, BotoConnectionError)) as caught:
        via(s3_http, proxy).list_buckets()
    assert not isinstance(caught.value, (ReadTimeoutError, ConnectTimeoutError)), caught.value
    assert proxy.connections >= 1

    # The RST may beat the request, or even the end of connect() (a timeout socket connects non-blocking and then
    # reads SO_ERROR, which by then can hold ECONNRESET).
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        with raw_connect(proxy) as sock:
            sock.sendall(REQUEST)
            sock.recv(4096)


def test_hang_gives_read_timeout(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    proxy.mode = "hang"
    with pytest.raises(ReadTimeoutError):
        via(s3_http, proxy).list_buckets()
    assert proxy.connections >= 1


def test_slowdown_gives_s3_slowdown_error(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    proxy.mode = "slowdown"
    client = via(s3_http, proxy)
    with pytest.raises(ClientError) as caught:
        client.list_buckets()
    response = caught.value.response
    assert response["Error"]["Code"] == "SlowDown"
    assert response["Error"]["Message"] == "Please reduce your request rate."
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # With a request body too: it is read and discarded, the answer is the same.
    with pytest.raises(ClientError) as caught:
        client.put_object(Bucket="any-bucket", Key="k", Body=b"x" * 100_000)
    assert caught.value.response["Error"]["Code"] == "SlowDown"


def test_slowdown_response_is_well_formed_http(proxy: FaultProxy) -> None:
    proxy.mode = "slowdown"
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    try:
        conn.request("PUT", "/bucket/key?x=1", body=b"y" * 5000)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert (response.status, response.reason) == (503, "Slow Down")
    assert response.getheader("Connection") == "close"
    assert int(response.getheader("Content-Length", "-1")) == len(body)
    assert b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>" in body
    assert b"<Resource>/bucket/key</Resource>" in body


def test_garbage_gives_an_error_and_serves_the_marker(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    proxy.mode = "garbage"
    with pytest.raises(ClientError) as caught:
        via(s3_http, proxy).head_bucket(Bucket="any-bucket")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    assert (response.status, response.reason) == (404, "Not Found")
    assert response.getheader("Content-Type", "").startswith("text/html")
    assert GARBAGE_MARKER in body


def test_switching_back_to_pass_recovers_with_the_same_client(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    """One client (and its keep-alive pool) through every mode: a pooled connection never bypasses a fault."""
    client = via(s3_http, proxy, BRISK)
    client.list_buckets()
    expected: dict[str, type[BaseException] | tuple[type[BaseException], ...]] = {
        "refuse": EndpointConnectionError,
        "reset": (HTTPClientError, BotoConnectionError),
        "hang": ReadTimeoutError,
        "slowdown": ClientError,
        "garbage": ClientError,
    }
    for mode, error in expected.items():
        proxy.mode = mode
        with pytest.raises(error):
            client.list_buckets()
        proxy.mode = "pass"
        client.list_buckets()


def test_refuse_and_back_keeps_the_port(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    port = proxy.port
    for _ in range(10):
        proxy.mode = "refuse"
        proxy.mode = "pass"
    assert proxy.port == port
    via(s3_http, proxy, PATIENT).list_buckets()


def test_starting_in_refuse_mode(s3_http: S3Endpoint) -> None:
    with start_fault_proxy(s3_http.host, s3_http.port, mode="refuse") as fault_proxy:
        with pytest.raises(ConnectionRefusedError):
            raw_connect(fault_proxy, timeout=5).close()
        fault_proxy.mode = "pass"
        via(s3_http, fault_proxy, PATIENT).list_buckets()


def test_concurrent_mode_changes(s3_http: S3Endpoint, proxy: FaultProxy) -> None:
    modes = sorted(MODES)
    errors: list[BaseException] = []

    def flip(offset: int) -> None:
        try:
            for i in range(20):
                proxy.mode = modes[(i + offset) % len(modes)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=flip, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    assert not any(worker.is_alive() for worker in workers)
    proxy.mode = "pass"
    via(s3_http, proxy, PATIENT).list_buckets()


def test_unknown_mode_is_rejected(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.mode = "explode"
    assert proxy.mode == "pass"


# ---------------------------------------------------------------------------------------------------------------
# hung connections, limits and shutdown
# ---------------------------------------------------------------------------------------------------------------


def test_hung_connection_stays_hung_until_the_mode_changes(proxy: FaultProxy) -> None:
    proxy.mode = "hang"
    with raw_connect(proxy) as sock:
        sock.sendall(REQUEST)
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(4096)  # nothing is ever answered...
        sock.sendall(b"more bytes are read and dropped")
        with pytest.raises(socket.timeout):
            sock.recv(4096)  # ...and the connection is not closed
        assert proxy.active_connections == 1
        proxy.mode = "pass"
        assert_closed_by_peer(sock)
    assert wait_until(lambda: proxy.active_connections == 0)


def test_stop_with_hung_connections_is_fast_and_leaves_nothing(s3_http: S3Endpoint) -> None:
    fault_proxy = start_fault_proxy(s3_http.host, s3_http.port, mode="hang")
    sockets = [raw_connect(fault_proxy) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(REQUEST)
        assert wait_until(lambda: fault_proxy.active_connections == 20)
        assert threads_of(fault_proxy)

        started = time.monotonic()
        fault_proxy.stop()
        assert time.monotonic() - started < 5  # ~0 in practice; STOP_TIMEOUT is 1.5 s

        for sock in sockets:
            assert_closed_by_peer(sock)
        assert threads_of(fault_proxy) == []
        assert fault_proxy.active_connections == 0
        with pytest.raises(ConnectionRefusedError):
            raw_connect(fault_proxy, timeout=5).close()
        fault_proxy.stop()  # idempotent
    finally:
        for sock in sockets:
            sock.close()
        fault_proxy.stop()


def test_stop_while_passing_closes_both_sides(s3_http: S3Endpoint) -> None:
    with start_fault_proxy(s3_http.host, s3_http.port) as fault_proxy:
        client = via(s3_http, fault_proxy, PATIENT)
        client.list_buckets()  # leaves a keep-alive connection open through the proxy
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert threads_of(fault_proxy) == []


def test_connection_cap(s3_http: S3Endpoint) -> None:
    with start_fault_proxy(s3_http.host, s3_http.port, mode="hang", max_connections=2) as fault_proxy:
        first, second = raw_connect(fault_proxy), raw_connect(fault_proxy)
        assert wait_until(lambda: fault_proxy.active_connections == 2)
        try:
            third = raw_connect(fault_proxy)
        except ConnectionResetError:
            pass  # reset before connect() even returned (see test_reset_gives_a_connection_error)
        else:
            with third:
                assert_closed_by_peer(third)
        assert wait_until(lambda: fault_proxy.connections == 3)
        assert fault_proxy.active_connections == 2
        first.close()
        second.close()
        assert wait_until(lambda: fault_proxy.active_connections == 0)


# ---------------------------------------------------------------------------------------------------------------
# TLS passes through
# ---------------------------------------------------------------------------------------------------------------


def test_tls_passes_through_unchanged(s3_https: S3Endpoint) -> None:
    with start_fault_proxy(s3_https.host, s3_https.port) as fault_proxy:
        client = via(s3_https, fault_proxy, BRISK, scheme="https")
        client.list_buckets()
        fault_proxy.mode = "hang"
        with pytest.raises(ReadTimeoutError):  # the TLS handshake itself is never answered
            client.list_buckets()


# ---------------------------------------------------------------------------------------------------------------
# the tripwire listener
# ---------------------------------------------------------------------------------------------------------------


def test_listener_records_hits() -> None:
    with start_listener() as listener:
        assert listener.url == f"http://127.0.0.1:{listener.port}"
        assert listener.hits == 0
        assert listener.requests == []

        conn = http.client.HTTPConnection(listener.host, listener.port, timeout=10)
        try:
            conn.request("GET", "/probe?x=1")
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        assert response.status == 200
        assert body == UNTRUSTED_BODY
        assert listener.hits == 1
        assert listener.requests[0].startswith(b"GET /probe?x=1 HTTP/1.1\r\n")


def test_listener_sees_an_s3_client_and_nothing_else(s3_http: S3Endpoint) -> None:
    with start_listener() as listener:
        assert listener.hits == 0  # a fresh port: nothing has reached it
        client = via(s3_http, listener, PATIENT)
        try:
            client.list_buckets()
        except Exception:  # whatever botocore makes of the body, the request did arrive
            pass
        assert listener.hits >= 1
        assert any(request.startswith(b"GET / HTTP/1.1") for request in listener.requests)
    assert threads_of(listener) == []
