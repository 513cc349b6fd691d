"""A "CORTX-profile" reverse proxy: an S3 endpoint that refuses what CORTX v1 (cortx-s3server) refuses.

moto accepts nearly everything modern boto3 sends, so a plugin tested only against moto could depend on
features CORTX v1 lacks. This proxy sits in front of an S3 upstream (normally the authenticating moto server of
:mod:`.moto_server`, or a real store such as Ceph RGW) and answers S3-style XML errors for:

(a) virtual-hosted-style requests (``Host: bucket.localhost``): 400 ``NotImplemented``; production CORTX installs
    have no per-bucket DNS, so only path-style works;
(b) flexible-checksum requests (``x-amz-checksum-*``, ``x-amz-sdk-checksum-algorithm``, ``x-amz-trailer``,
    ``x-amz-content-sha256: STREAMING-*-TRAILER``): 400 ``NotImplemented``; botocore >= 1.36 sends them by default;
(c) CORS (``OPTIONS``, ``?cors``): 501 ``NotImplemented``;
(d) ``POST ?delete`` (DeleteObjects) without a Content-MD5 matching the body: 400 ``BadDigest``;
(e) query-string (presigned) authentication: 403 ``AccessDenied``; v1 only parses the Authorization header.

Everything else is forwarded unchanged, including the client's Host header, because SigV4 signs it and the
upstream verifies the signature. Bodies are streamed both ways in bounded pieces. Every request is recorded so
tests can assert on what a client really sent (e.g. "all path-style", "no checksum headers").

Only the standard library is used (``http.server`` + ``http.client``); no Django.

One module although long: it is the CORTX profile, one rule per CORTX behaviour in one request handler, so
the profile can be read against docs/compatibility.md in one place.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import logging
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from ..connection.config import DEFAULT_REGION
from .moto_server import S3Endpoint, start_moto
from .tls import issue_server_tls

logger = logging.getLogger(__name__)

# Size of the pieces bodies are streamed in; large enough for throughput, small enough to keep memory flat.
CHUNK_SIZE = 256 * 1024
# A DeleteObjects body (max 1000 keys of max 1024 bytes each, XML-wrapped) stays well below this; the body has to
# be buffered to verify its MD5, so cap it.
MAX_DELETE_BODY = 4 * 1024 * 1024

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are not forwarded. None of them is ever signed
# by botocore (they are all in botocore.auth.SIGNED_HEADERS_BLACKLIST), so dropping them keeps signatures valid.
# Expect is answered by the proxy itself (it decides whether the body is wanted).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)

# Host names that mean "the endpoint itself" (path-style); IP literals are always accepted too.
DEFAULT_ENDPOINT_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_TRAILER_PAYLOADS = frozenset({"STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"})
_CHECKSUM_HEADERS = frozenset({"x-amz-sdk-checksum-algorithm", "x-amz-trailer"})


@dataclass(frozen=True)
class Rejection:
    """An S3 error the proxy answers instead of forwarding."""

    status: int
    code: str
    message: str
    rule: str
    """Which CORTX restriction fired: "virtual-host", "checksum", "cors", "delete-md5" or "presigned"."""


@dataclass
class RecordedRequest:
    """One request as the proxy received it (before any forwarding)."""

    method: str
    path: str
    """Request path as sent (still percent-encoded), without the query string."""
    query: str
    """Raw query string (may be empty)."""
    host: str | None
    headers: dict[str, str]
    """All request headers, names lower-cased, repeated headers joined with ", "."""
    client: str
    status: int | None = None
    """Status sent back to the client (set before the response body is sent)."""
    error_code: str | None = None
    """S3 error code if the proxy itself rejected the request."""
    rule: str | None = None
    """:attr:`Rejection.rule` if the proxy rejected the request."""
    forwarded: bool = False

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def rejected(self) -> bool:
        return self.error_code is not None

    @property
    def checksum_headers(self) -> list[str]:
        """Names of flexible-checksum headers on this request (what CORTX v1 cannot handle)."""
        return [name for name in self.headers if name.startswith("x-amz-checksum-") or name in _CHECKSUM_HEADERS]


# --------------------------------------------------------------------------------------------------------------
# The CORTX rules (pure functions, usable without a server)
# --------------------------------------------------------------------------------------------------------------


def split_host(host_header: str) -> str:
    """Host name of a Host header without port or IPv6 brackets, lower-cased, trailing dot removed."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".").lower()


def is_virtual_host(host_header: str | None, endpoint_hosts: Iterable[str] = DEFAULT_ENDPOINT_HOSTS) -> bool:
    """True if the Host header is not the endpoint itself, i.e. a bucket name is prepended to it.

    CORTX v1 serves one configured endpoint name; any other name reaching it is ``<bucket>.<endpoint>``
    (virtual-hosted style). A missing Host (HTTP/1.0) is path-style by definition.
    """
    if not host_header:
        return False
    host = split_host(host_header)
    if host in {h.lower() for h in endpoint_hosts}:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def header_rejection(
    method: str, query: str, headers: Any, endpoint_hosts: Iterable[str] = DEFAULT_ENDPOINT_HOSTS
) -> Rejection | None:
    """Rules (e), (c), (a): those decided from the request line and the Host header alone.

    ``headers`` is anything with a case-insensitive ``get`` (``http.client.HTTPMessage``, ``email.message``).
    Order: presigned first (it is an auth failure), then CORS, then addressing, as a server would check them.
    """
    params = parse_qs(query, keep_blank_values=True)
    if "X-Amz-Signature" in params or "Signature" in params:
        return Rejection(
            403,
            "AccessDenied",
            "Query-string authentication (presigned URLs) is not supported by CORTX: sign requests with the "
            "Authorization header.",
            "presigned",
        )
    if method.upper() == "OPTIONS" or "cors" in params:
        return Rejection(
            501, "NotImplemented", "CORS (OPTIONS requests and the ?cors sub-resource) is not implemented.", "cors"
        )
    host = headers.get("Host")
    if is_virtual_host(host, endpoint_hosts):
        return Rejection(
            400,
            "NotImplemented",
            f"Virtual-hosted-style requests are not supported (Host: {host}): use path-style addressing "
            "(https://endpoint/bucket/key).",
            "virtual-host",
        )
    return None


def checksum_rejection(headers: Any) -> Rejection | None:
    """Rule (b): flexible checksums (headers or trailers) that cortx-s3server does not understand."""
    names = [name.lower() for name in headers.keys()]
    offending = [n for n in names if n.startswith("x-amz-checksum-") or n in _CHECKSUM_HEADERS]
    sha = (headers.get("x-amz-content-sha256") or "").strip().upper()
    if sha in _TRAILER_PAYLOADS:
        offending.append(f"x-amz-content-sha256: {sha}")
    if offending:
        return Rejection(
            400,
            "NotImplemented",
            "Flexible checksums are not supported: "
            + ", ".join(sorted(set(offending)))
            + ' (configure the client with request_checksum_calculation/response_checksum_validation="when_required").',
            "checksum",
        )
    return None


def delete_md5_rejection(body: bytes, content_md5: str | None) -> Rejection | None:
    """Rule (d): DeleteObjects needs a Content-MD5 that matches the body (botocore >= 1.36 no longer sends one)."""
    if not content_md5:
        return Rejection(
            400,
            "BadDigest",
            "Missing Content-MD5: DeleteObjects requires a Content-MD5 header (botocore >= 1.36 sends a CRC32 "
            "checksum instead; add Content-MD5 or delete keys one at a time).",
            "delete-md5",
        )
    expected = base64.b64encode(hashlib.md5(body).digest()).decode("ascii")
    if content_md5.strip() != expected:
        return Rejection(
            400, "BadDigest", "The Content-MD5 you specified did not match what we received.", "delete-md5"
        )
    return None


def error_xml(code: str, message: str, resource: str = "", request_id: str = "") -> bytes:
    """An S3 error document (the shape botocore parses into ``ClientError.response["Error"]``)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{escape(request_id)}</RequestId></Error>"
    ).encode()


# --------------------------------------------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed the connection in the middle of its request body."""


def _connection_tokens(headers: Any) -> set[str]:
    """Header names listed in Connection are hop-by-hop for this message too."""
    tokens: set[str] = set()
    for value in headers.get_all("Connection") or []:
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response is length-delimited or chunked
    server: _ProxyServer
    # Idle keep-alive connections and stalled clients give up their thread after this many seconds.
    timeout = 60
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per request.
    disable_nagle_algorithm = True
    server_version = "CortxProfileProxy"
    sys_version = ""

    # ---- request plumbing ----------------------------------------------------------------------------------

    def handle_expect_100(self) -> bool:
        # Defer "100 Continue": a request the proxy rejects must get its final error response *instead*, so that
        # the client (botocore waits for it) does not upload a body that would only be thrown away.
        return True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    def _handle(self) -> None:
        self._linger = False
        target = self.path
        if "://" in target.partition("?")[0]:
            # Absolute-form request target (sent when a client uses us as an HTTP proxy): keep origin-form only.
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path, _, query = target.partition("?")
        headers = self.headers
        record = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            host=headers.get("Host"),
            headers={name.lower(): ", ".join(headers.get_all(name) or []) for name in dict.fromkeys(headers.keys())},
            client=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        self.server.record(record)
        self._record = record
        self._target = target

        expects_continue = "100-continue" in (headers.get("Expect") or "").lower()
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        try:
            length = 0 if chunked else int(headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self._reject(Rejection(400, "InvalidArgument", "Invalid Content-Length.", "http"), close=True)
            return
        has_body = chunked or length > 0

        try:
            rejection = header_rejection(self.command, query, headers, self.server.endpoint_hosts)
            if rejection is None and self.command == "POST" and "delete" in parse_qs(query, keep_blank_values=True):
                if expects_continue:
                    self._send_continue()
                body = b"".join(self._body_pieces(chunked, length, limit=MAX_DELETE_BODY))
                data = _dechunk(body) if chunked else body
                rejection = delete_md5_rejection(data, headers.get("Content-MD5")) or checksum_rejection(headers)
                if rejection is None:
                    self._forward([body], chunked)
                else:
                    self._reject(rejection)
                return
            rejection = rejection or checksum_rejection(headers)
            if rejection is not None:
                if has_body and expects_continue:
                    # The client is waiting for 100 and will not send the body: answer and close the connection
                    # (lingering, in case it sends the body anyway).
                    self._reject(rejection, close=True)
                else:
                    if has_body:
                        for _ in self._body_pieces(chunked, length):  # drain, so the connection stays usable
                            pass
                    self._reject(rejection)
                return
            if expects_continue:
                self._send_continue()
            self._forward(self._body_pieces(chunked, length), chunked)
        except _BodyTooLarge:
            self._reject(Rejection(400, "MaxMessageLengthExceeded", "Request body too large.", "http"), close=True)
        except (_ClientGone, ConnectionError, TimeoutError, ssl.SSLError) as exc:
            logger.debug("client %s went away: %r", record.client, exc)
            self.close_connection = True

    def _send_continue(self) -> None:
        self.send_response_only(100)
        self.end_headers()

    def _body_pieces(self, chunked: bool, length: int, limit: int | None = None) -> Iterator[bytes]:
        """The request body exactly as received (chunked framing included), in bounded pieces."""
        total = 0
        if not chunked:
            if limit is not None and length > limit:
                raise _BodyTooLarge()
            remaining = length
            while remaining > 0:
                piece = self.rfile.read(min(remaining, CHUNK_SIZE))
                if not piece:
                    raise _ClientGone("body truncated")
                remaining -= len(piece)
                yield piece
            return
        # Chunked: relay the framing itself so the upstream sees the same bytes (and any chunk extensions).
        while True:
            line = self.rfile.readline(65537)
            if not line.endswith(b"\n"):
                raise _ClientGone("bad chunk header")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _ClientGone("malformed chunk size") from None
            yield line
            if size == 0:
                while True:  # trailer section, ends with an empty line
                    trailer = self.rfile.readline(65537)
                    if not trailer:
                        raise _ClientGone("truncated trailers")
                    yield trailer
                    if trailer in (b"\r\n", b"\n"):
                        return
            total += size
            if limit is not None and total > limit:
                raise _BodyTooLarge()
            remaining = size + 2  # chunk data + CRLF
            while remaining > 0:
                piece = self.rfile.read(min(remaining, CHUNK_SIZE))
                if not piece:
                    raise _ClientGone("chunk truncated")
                remaining -= len(piece)
                yield piece

    # ---- responses -------------------------------------------------------------------------------------------

    def _reject(self, rejection: Rejection, close: bool = False) -> None:
        record = self._record
        record.status, record.error_code, record.rule = rejection.status, rejection.code, rejection.rule
        request_id = uuid.uuid4().hex[:16].upper()
        body = error_xml(rejection.code, rejection.message, self._target.partition("?")[0], request_id)
        self.send_response_only(rejection.status)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Server", self.server_version)
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if close or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
            self._linger = close
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _upstream_connection(self) -> http.client.HTTPConnection:
        up = self.server.upstream
        if up.scheme == "https":
            return http.client.HTTPSConnection(
                up.hostname, up.port, timeout=self.server.upstream_timeout, context=self.server.upstream_ssl
            )
        return http.client.HTTPConnection(up.hostname, up.port, timeout=self.server.upstream_timeout)

    def _forward(self, body: Iterable[bytes], chunked: bool) -> None:
        record = self._record
        conn = self._upstream_connection()
        try:
            try:
                conn.connect()
            except OSError as exc:
                # Nothing of the body has been read: answer and close (lingering) instead of draining it.
                self._reject(
                    Rejection(503, "ServiceUnavailable", f"Upstream S3 endpoint unreachable: {exc}", "upstream"),
                    close=True,
                )
                return
            skip = HOP_BY_HOP | _connection_tokens(self.headers)
            conn.putrequest(self.command, self._target, skip_host=True, skip_accept_encoding=True)
            if self.headers.get("Host") is None:
                conn.putheader("Host", f"{self.server.upstream.hostname}:{self.server.upstream.port}")
            for name, value in self.headers.items():
                if name.lower() not in skip:
                    conn.putheader(name, value)  # original order, spelling and value
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            try:
                conn.endheaders()
                for piece in body:
                    conn.send(piece)
            except _ClientGone:
                raise
            except OSError as exc:
                # The upstream may answer early (e.g. an error) and close while the body is still coming in; its
                # response is still worth relaying. The rest of the client's body is unread: close afterwards.
                logger.debug("upstream stopped reading the body: %r", exc)
                self.close_connection = True
                self._linger = True
            try:
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._reject(Rejection(503, "ServiceUnavailable", f"Upstream S3 endpoint failed: {exc}", "upstream"))
                return
            record.forwarded = True
            record.status = response.status
            self._relay_response(response)
        finally:
            conn.close()

    def _relay_response(self, response: http.client.HTTPResponse) -> None:
        bodyless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        skip = HOP_BY_HOP | _connection_tokens(response.headers)
        length_known = response.length is not None and not response.chunked
        rechunk = not bodyless and not length_known and self.request_version >= "HTTP/1.1"
        if not bodyless and not length_known and not rechunk:
            self.close_connection = True  # HTTP/1.0 client and unknown length: delimit by closing

        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in skip:
                self.send_header(name, value)
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if bodyless:
            return
        try:
            while True:
                piece = response.read(CHUNK_SIZE)
                if not piece:
                    break
                if rechunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
            if rechunk:
                self.wfile.write(b"0\r\n\r\n")
        except (http.client.HTTPException, OSError) as exc:
            # Either side broke off mid-body. Headers are out, so the only honest signal left to the client is
            # closing the connection before the announced length / final chunk.
            logger.debug("response relay interrupted: %r", exc)
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if getattr(self, "_linger", False):
                _lingering_close(self.connection)


class _BodyTooLarge(Exception):
    pass


def _dechunk(raw: bytes) -> bytes:
    """Decode a complete chunked body (only used for the small, buffered DeleteObjects body)."""
    out = bytearray()
    pos = 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";", 1)[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            return bytes(out)
        out += raw[pos : pos + size]
        pos += size + 2


def _lingering_close(sock: socket.socket) -> None:
    """Half-close and drain briefly before the socket is closed.

    Closing with unread request bytes in the receive buffer makes the kernel send RST, and the client may then
    lose our (already sent) error response. Draining for a moment lets it read the response first.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.5)
        drained = 0
        while drained < 64 * 1024 * 1024:
            data = sock.recv(CHUNK_SIZE)
            if not data:
                break
            drained += len(data)
    except (OSError, ValueError):
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck connection must never block stop() or interpreter exit
    request_queue_size = 128  # bursts of parallel clients (16+) opening connections at once

    def __init__(
        self,
        address: tuple[str, int],
        *,
        upstream_url: str,
        upstream_ca_path: str | None,
        upstream_timeout: float,
        ssl_context: ssl.SSLContext | None,
        endpoint_hosts: Iterable[str],
    ) -> None:
        self.upstream = urlsplit(upstream_url)
        if self.upstream.scheme not in ("http", "https") or not self.upstream.hostname:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream_url!r}")
        self.upstream_ssl = (
            ssl.create_default_context(cafile=upstream_ca_path) if self.upstream.scheme == "https" else None
        )
        self.upstream_timeout = upstream_timeout
        self.ssl_context = ssl_context
        self.endpoint_hosts = frozenset(h.lower() for h in endpoint_hosts)
        self._log: list[RecordedRequest] = []
        self._log_lock = threading.Lock()
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, _ProxyHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshakes run here, in the per-connection thread, not in accept(): a client that connects and
        # never completes (or aborts) the handshake must not stall the accept loop.
        conn = request
        if self.ssl_context is not None:
            request.settimeout(10)
            try:
                conn = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                logger.debug("TLS handshake with %s failed: %r", client_address, exc)
                request.close()
                return
        with self._active_lock:
            self._active.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._active_lock:
                self._active.discard(conn)
            if conn is not request:
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error handling request from %s", client_address, exc_info=True)

    def record(self, entry: RecordedRequest) -> None:
        with self._log_lock:
            self._log.append(entry)

    def snapshot(self, start: int = 0) -> list[RecordedRequest]:
        with self._log_lock:
            return self._log[start:]

    def clear(self) -> None:
        with self._log_lock:
            self._log.clear()

    def close_active(self) -> None:
        with self._active_lock:
            active = list(self._active)
        for conn in active:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class CortxFilter:
    """The CORTX-profile proxy in front of ``upstream_url``; listens on ``host``:``port`` (0: a free port).

    Use :meth:`start`/:meth:`stop` or a ``with`` block. ``url``, ``ca_pem`` and ``ca_path`` describe how clients
    reach it (``ca_*`` only with ``https=True``; the certificate covers ``127.0.0.1`` and ``localhost``).
    ``endpoint_hosts`` adds host names (besides IP literals and ``localhost``) treated as path-style.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        https: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_ca_path: str | None = None,
        upstream_timeout: float = 120.0,
        endpoint_hosts: Iterable[str] = (),
        tmp_dir: str | Path | None = None,
    ) -> None:
        self.upstream_url = upstream_url
        self.https = https
        self._bind = (host, port)
        self._upstream_ca_path = upstream_ca_path
        self._upstream_timeout = upstream_timeout
        self._endpoint_hosts = DEFAULT_ENDPOINT_HOSTS | {host.lower()} | {h.lower() for h in endpoint_hosts}
        self._tmp_dir = tmp_dir
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: Callable[[], Any] | None = None
        self.ca_pem: str | None = None
        self.ca_path: str | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> CortxFilter:
        if self._server is not None:
            return self
        owned_dir = None
        ssl_context = None
        if self.https:
            if self._tmp_dir is None:
                owned_dir = tempfile.mkdtemp(prefix="cortx-filter-")
            tls = issue_server_tls(self._tmp_dir or owned_dir, prefix="cortx-filter")
            self.ca_pem, self.ca_path = tls.ca_pem, tls.ca_path
            ssl_context = tls.server_context()
        try:
            server = _ProxyServer(
                self._bind,
                upstream_url=self.upstream_url,
                upstream_ca_path=self._upstream_ca_path,
                upstream_timeout=self._upstream_timeout,
                ssl_context=ssl_context,
                endpoint_hosts=self._endpoint_hosts,
            )
        except BaseException:
            if owned_dir:
                shutil.rmtree(owned_dir, ignore_errors=True)
            raise
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"cortx-filter-{server.server_port}"
        )
        thread.daemon = True
        thread.start()
        self._server, self._thread = server, thread
        self._finalizer = weakref.finalize(self, _shutdown_server, server, thread, owned_dir)
        return self

    def stop(self) -> None:
        """Stop accepting, cut open connections, release the port; safe to call more than once."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> CortxFilter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- addressing -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("CortxFilter is not started")
        return self._server.server_port

    @property
    def host(self) -> str:
        return self._bind[0]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    # ---- request log ----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of every request seen so far, in arrival order."""
        return self._server.snapshot() if self._server else []

    def mark(self) -> int:
        """Current position in the log, for :meth:`requests_since` (session-scoped proxies are shared)."""
        return len(self.requests)

    def requests_since(self, mark: int) -> list[RecordedRequest]:
        return self._server.snapshot(mark) if self._server else []

    def clear_requests(self) -> None:
        if self._server:
            self._server.clear()


def _shutdown_server(server: _ProxyServer, thread: threading.Thread, owned_dir: str | None) -> None:
    try:
        server.shutdown()  # stops serve_forever (returns within poll_interval)
        server.server_close()  # releases the listening port
        server.close_active()  # wakes handler threads blocked on idle keep-alive connections
        thread.join(timeout=5)
    finally:
        if owned_dir:
            shutil.rmtree(owned_dir, ignore_errors=True)


def start_cortx_filter(upstream_url: str, https: bool = False, **kwargs: Any) -> CortxFilter:
    """Start a :class:`CortxFilter` in front of ``upstream_url`` (keyword arguments as for the class)."""
    return CortxFilter(upstream_url, https=https, **kwargs).start()


@dataclass
class CortxEndpoint(S3Endpoint):
    """An :class:`S3Endpoint` whose ``url`` is a CORTX-profile proxy; ``requests`` is the proxy's request log."""

    proxy: CortxFilter | None = field(default=None, repr=False)
    upstream: S3Endpoint | None = field(default=None, repr=False)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.proxy.requests if self.proxy else []

    def mark(self) -> int:
        return self.proxy.mark() if self.proxy else 0

    def requests_since(self, mark: int) -> list[RecordedRequest]:
        return self.proxy.requests_since(mark) if self.proxy else []

    def clear_requests(self) -> None:
        if self.proxy:
            self.proxy.clear_requests()

    def __enter__(self) -> CortxEndpoint:
        return self


def start_cortx_endpoint(
    https: bool = False,
    *,
    upstream: S3Endpoint | None = None,
    tmp_dir: str | Path | None = None,
    endpoint_hosts: Iterable[str] = (),
) -> CortxEndpoint:
    """A :class:`CortxFilter` (HTTP or HTTPS) in front of ``upstream``, or of a new authenticating moto (HTTP).

    ``upstream`` may be any running :class:`S3Endpoint`: moto, or a real store such as Ceph RGW
    (:func:`.ceph_rgw.start_ceph_rgw`) or SeaweedFS (:func:`.seaweedfs.start_seaweedfs`); a given upstream is not
    stopped with this endpoint, and ``endpoint.upstream`` keeps its extras (e.g. ``read_only_key``).
    Credentials are the upstream's: the proxy does not re-sign, it forwards the client's signature and Host, which
    every SigV4 server verifies against the Host it receives.
    """
    owned_upstream = upstream is None
    up = upstream if upstream is not None else start_moto(https=False)
    try:
        proxy = CortxFilter(
            up.url, https=https, upstream_ca_path=up.ca_path, tmp_dir=tmp_dir, endpoint_hosts=endpoint_hosts
        ).start()
    except BaseException:
        if owned_upstream:
            up.stop()
        raise
    endpoint = CortxEndpoint(
        url=proxy.url,
        access_key=up.access_key,
        secret_key=up.secret_key,
        ca_pem=proxy.ca_pem,
        ca_path=proxy.ca_path,
        process=up.process,
        region=up.region or DEFAULT_REGION,
        log_path=up.log_path,
        proxy=proxy,
        upstream=up,
    )
    if owned_upstream:
        endpoint._cleanups.append(up.stop)
    endpoint._cleanups.append(proxy.stop)  # runs first: stop accepting before the upstream goes away
    return endpoint
