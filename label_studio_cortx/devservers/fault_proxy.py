"""A fault-injecting TCP proxy, and a tripwire listener, for network-failure tests (standard library only).

This module owns two test-only helpers; nothing in the plugin imports it.

:class:`FaultProxy` (:func:`start_fault_proxy`) listens on a free loopback port and, in ``pass`` mode, forwards raw
TCP bytes both ways to an upstream (normally the moto server of :mod:`.moto_server`). Being a byte pipe it never
looks at or rewrites what it forwards: TLS passes through unchanged, and SigV4 signatures stay valid because the
client signs the Host it connects to (the proxy's) and the upstream verifies against the same Host header. Its
``mode`` can be switched at runtime, from any thread, to inject one failure:

- ``pass``: forward.
- ``refuse``: the listening socket is closed, so ``connect()`` fails with ECONNREFUSED. The port stays reserved by
  a bound, non-listening socket (which the kernel does not accept connections on); switching back listens on
  the same port again.
- ``reset``: accept, then close with an RST (``SO_LINGER`` 0).
- ``hang``: accept and read, but never answer and never close - until the mode changes or the proxy stops.
- ``slowdown``: answer every request with ``503 Slow Down`` and an S3 XML ``SlowDown`` error body.
- ``garbage``: answer every request with ``404 Not Found`` and an HTML page containing :data:`GARBAGE_MARKER`,
  the stand-in for a foreign service whose body must never be echoed in the plugin's error messages.

A mode applies to connections accepted while it is set. Changing the mode closes every connection that is still
open, so neither a hung connection nor a pooled keep-alive connection from an earlier ``pass`` outlives it (a
client's next request then opens a new connection and meets the new mode).

:class:`Listener` (:func:`start_listener`) is a plain TCP listener that records every connection it accepts
(:attr:`Listener.hits`, :attr:`Listener.requests`) and answers with a meaningless ``200`` page
(:data:`UNTRUSTED_BODY`): point an "untrusted" URL at it to prove that no request ever reaches it.

Both are bounded: one daemon thread per connection, at most ``max_connections`` (default 256) open at once
(further connections are accepted and reset at once), and :meth:`stop` closes every socket, waits for every
thread and returns within about two seconds even with hung connections.

One module: the fault modes share one connection loop and one bounded thread set.
"""

from __future__ import annotations

import errno
import itertools
import logging
import selectors
import socket
import struct
import threading
import time
import uuid
from email.utils import formatdate
from typing import Any
from xml.sax.saxutils import escape

logger = logging.getLogger(__name__)

PASS = "pass"
REFUSE = "refuse"
RESET = "reset"
HANG = "hang"
SLOWDOWN = "slowdown"
GARBAGE = "garbage"
MODES = frozenset({PASS, REFUSE, RESET, HANG, SLOWDOWN, GARBAGE})

# In the HTML page the ``garbage`` mode serves; tests assert it never shows up in a user-facing error.
GARBAGE_MARKER = "SECRET-INTERNAL-BANNER"
# The body every Listener response carries.
UNTRUSTED_BODY = "UNTRUSTED-SERVICE-BODY"

DEFAULT_MAX_CONNECTIONS = 256
CHUNK_SIZE = 64 * 1024
# A request head larger than this is not HTTP from botocore; the connection is dropped.
MAX_HEAD = 64 * 1024
# How long the HTTP-answering modes and the Listener wait for a request head (per recv).
REQUEST_TIMEOUT = 10.0
# After answering, how long to drain what the client still sends before closing (avoids turning the close into
# an RST that could destroy the response before the client has read it).
LINGER_TIMEOUT = 1.0
# Budget of stop(): the accept thread and every connection thread are joined within it.
STOP_TIMEOUT = 1.5
# How long a mode change waits for the accept thread to close or reopen the listening socket.
MODE_SWITCH_TIMEOUT = 5.0
# How long to retry re-binding the proxy's own port (e.g. after a TIME_WAIT) before giving up.
REBIND_TIMEOUT = 2.0

_SERIAL = itertools.count(1)


def _format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _shutdown(sock: socket.socket | None) -> None:
    """Wake up any thread blocked on ``sock`` (recv returns b"", send fails) without closing its descriptor."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass


def _arm_reset(sock: socket.socket) -> None:
    """Make the next close() of ``sock`` send an RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


def _lingering_close_prep(sock: socket.socket, timeout: float = LINGER_TIMEOUT) -> None:
    """Half-close and drain for up to ``timeout`` seconds, so the final close() is a clean FIN."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(CHUNK_SIZE):
                return
    except OSError:
        pass


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """Read up to the end of an HTTP request head; ``(head, bytes after it)``, or None if there is none."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            return None
        try:
            data = sock.recv(CHUNK_SIZE)
        except OSError:
            return None
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """``(method, target, headers)`` with lower-cased header names; tolerant of malformed input."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    method = parts[0] if parts else ""
    target = parts[1] if len(parts) > 1 else "/"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _discard_body(sock: socket.socket, headers: dict[str, str], already: int) -> None:
    """Read and drop the request body announced by Content-Length (not when the client awaits 100-continue)."""
    if headers.get("expect", "").lower() == "100-continue":
        return  # the client sends no body until told to; a final status instead of 100 is allowed (RFC 9110)
    try:
        remaining = int(headers.get("content-length", "0")) - already
    except ValueError:
        return
    while remaining > 0:
        try:
            data = sock.recv(min(CHUNK_SIZE, remaining))
        except OSError:
            return
        if not data:
            return
        remaining -= len(data)


def _http_response(status: str, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> bytes:
    headers = {
        "Date": formatdate(usegmt=True),
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


def slowdown_response(resource: str = "/") -> bytes:
    """The full ``503 Slow Down`` response of the ``slowdown`` mode (S3's throttling error)."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    return _http_response(
        "503 Slow Down", "application/xml", body, {"x-amz-request-id": request_id, "Retry-After": "1"}
    )


def garbage_response() -> bytes:
    """The full ``404`` response of the ``garbage`` mode: a foreign service's HTML page with :data:`GARBAGE_MARKER`."""
    body = (
        "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
        f"<p>{GARBAGE_MARKER}: intranet-gw-07.corp.example (build 4.2.1-internal), contact ops@corp.example</p>"
        "</body></html>"
    ).encode()
    return _http_response("404 Not Found", "text/html; charset=utf-8", body, {"Server": "corp-gateway/4.2.1"})


class _Connection:
    """One accepted connection: its socket(s), the mode it was accepted in and the thread serving it."""

    __slots__ = ("sock", "mode", "upstream", "thread", "interrupted")

    def __init__(self, sock: socket.socket, mode: str) -> None:
        self.sock = sock
        self.mode = mode
        self.upstream: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.interrupted = False

    def interrupt(self) -> None:
        """Wake the serving thread (it then closes everything); called with the server's lock held."""
        self.interrupted = True
        _shutdown(self.sock)
        _shutdown(self.upstream)

    def close(self) -> None:
        _close(self.upstream)
        _close(self.sock)


class _TcpServer:
    """Accept loop, connection registry and bounded shutdown shared by :class:`FaultProxy` and :class:`Listener`.

    Only the accept thread touches the listening socket; others ask it to close or reopen it through
    :meth:`_set_listening` (a wake-up socketpair plus a generation counter), so no descriptor is ever closed
    under a thread that is waiting on it.
    """

    _kind = "tcp-server"

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = host
        self._requested_port = port
        self._port = 0
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: set[_Connection] = set()
        self._accepted = 0
        self._stopped = False
        self._started = False
        self._want_listening = True
        self._generation = 0
        self._applied = 0
        self._listen_error: OSError | None = None
        self._listener: socket.socket | None = None  # listening (owned by the accept thread once started)
        self._reserved: socket.socket | None = None  # bound, not listening: holds the port while refusing
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._serial = next(_SERIAL)

    # -- public surface ------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Unique per instance; every thread of this server is named ``NAME-...``."""
        return f"{self._kind}-{self._serial}"

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (use ``https://`` yourself to tunnel TLS through a proxy)."""
        return _format_url(self._host, self._port)

    @property
    def connections(self) -> int:
        """How many connections have been accepted so far (including ones reset for exceeding the cap)."""
        with self._lock:
            return self._accepted

    @property
    def active_connections(self) -> int:
        """How many accepted connections are still open."""
        with self._lock:
            return len(self._connections)

    def stop(self) -> None:
        """Close every socket and join every thread; returns within about 2 s. Safe to call more than once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            open_connections = list(self._connections)
            for connection in open_connections:
                connection.interrupt()
            self._changed.notify_all()
        deadline = time.monotonic() + STOP_TIMEOUT
        self._wake()
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        for connection in open_connections:
            if connection.thread is not None:
                connection.thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftovers = list(self._connections)
            self._connections.clear()
        for connection in leftovers:  # a thread that did not finish in time: take its sockets away anyway
            connection.close()
        if self._accept_thread is None or not self._accept_thread.is_alive():
            _close(self._listener)
            _close(self._reserved)
            self._listener = self._reserved = None
        _close(self._wake_r)
        _close(self._wake_w)
        if leftovers:
            logger.warning(
                "%s on port %s: %d connection thread(s) did not stop in time", self._kind, self._port, len(leftovers)
            )

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def _start(self, listening: bool) -> None:
        sock = self._bind(self._requested_port, retry=self._requested_port != 0)
        try:
            self._port = sock.getsockname()[1]
            if listening:
                sock.listen(128)
                sock.setblocking(False)
                self._listener = sock
            else:
                self._reserved = sock
            self._want_listening = listening
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
            self._started = True
            self._accept_thread.start()
        except BaseException:
            _close(sock)
            self._listener = self._reserved = None
            _close(self._wake_r)
            _close(self._wake_w)
            raise

    def _bind(self, port: int, retry: bool) -> socket.socket:
        deadline = time.monotonic() + (REBIND_TIMEOUT if retry else 0.0)
        while True:
            sock = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                # Needed to bind again while connections from before (or their TIME_WAIT) still use the port;
                # on Linux it never lets two sockets *listen* on one port.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self._host, port))
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _wake(self) -> None:
        try:
            if self._wake_w is not None:
                self._wake_w.send(b"x")
        except OSError:
            pass  # the pipe is full (a wake-up is already pending) or closed (stopping)

    def _set_listening(self, want: bool) -> None:
        """Have the accept thread open or close the listening socket, and wait until it has."""
        with self._lock:
            if self._stopped or not self._started:
                self._want_listening = want
                return
            self._want_listening = want
            self._generation += 1
            generation = self._generation
            self._listen_error = None
        self._wake()
        with self._changed:
            done = self._changed.wait_for(
                lambda: self._applied >= generation or self._stopped, timeout=MODE_SWITCH_TIMEOUT
            )
            error = self._listen_error
        if error is not None:
            raise error
        if not done:
            raise TimeoutError(f"{self._kind} on port {self._port}: the accept thread did not switch in time")

    # -- accept thread -------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._wake_r is not None
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ)
            if self._listener is not None:
                selector.register(self._listener, selectors.EVENT_READ)
            while True:
                with self._lock:
                    if self._stopped:
                        return
                events = selector.select()
                with self._lock:
                    if self._stopped:
                        return
                for key, _ in events:
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                        self._apply_listening(selector)
                    elif key.fileobj is self._listener:
                        self._accept_one()
        except Exception:
            logger.exception("%s on port %s: accept loop failed", self._kind, self._port)
        finally:
            selector.close()
            _close(self._listener)
            _close(self._reserved)
            self._listener = self._reserved = None
            with self._lock:
                self._changed.notify_all()

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _apply_listening(self, selector: selectors.BaseSelector) -> None:
        with self._lock:
            want = self._want_listening and not self._stopped
            generation = self._generation
        error: OSError | None = None
        try:
            if want and self._listener is None:
                sock = self._reserved if self._reserved is not None else self._bind(self._port, retry=True)
                self._reserved = None
                try:
                    sock.listen(128)
                    sock.setblocking(False)
                except OSError:
                    sock.close()
                    raise
                self._listener = sock
                selector.register(sock, selectors.EVENT_READ)
            elif not want and self._listener is not None:
                selector.unregister(self._listener)
                self._listener.close()  # pending, not yet accepted connections are reset by the kernel
                self._listener = None
                self._reserved = self._bind(self._port, retry=True)
        except OSError as exc:
            error = exc
        with self._lock:
            if error is not None:
                self._listen_error = error
            self._applied = max(self._applied, generation)
            self._changed.notify_all()

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. EMFILE: back off instead of spinning
            logger.warning("%s on port %s: accept failed: %s", self._kind, self._port, exc)
            time.sleep(0.05)
            return
        sock.setblocking(True)
        with self._lock:
            if self._stopped:
                _close(sock)
                return
            self._accepted += 1
            if len(self._connections) >= self._max_connections:
                over_limit = True
            else:
                over_limit = False
                connection = _Connection(sock, self._mode_for_new_connection())
                thread = threading.Thread(
                    target=self._serve,
                    args=(connection,),
                    name=f"{self.name}-conn-{self._accepted}",
                    daemon=True,
                )
                connection.thread = thread
                self._connections.add(connection)
                try:
                    thread.start()  # under the lock, so stop() never sees a registered but unstarted thread
                except RuntimeError:  # can't start new thread
                    self._connections.discard(connection)
                    connection.thread = None
                    over_limit = True
        if over_limit:
            logger.debug("%s on port %s: connection limit reached, resetting", self._kind, self._port)
            _arm_reset(sock)
            _close(sock)

    def _serve(self, connection: _Connection) -> None:
        try:
            self._handle(connection)
        except Exception:
            logger.debug("%s on port %s: connection failed", self._kind, self._port, exc_info=True)
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    # -- for subclasses ------------------------------------------------------------------------------------------

    def _mode_for_new_connection(self) -> str:
        return ""

    def _handle(self, connection: _Connection) -> None:
        raise NotImplementedError


class FaultProxy(_TcpServer):
    """A TCP proxy to ``upstream_host:upstream_port`` whose :attr:`mode` injects faults (see the module docstring).

    Create it with :func:`start_fault_proxy`; stop it with :meth:`stop` or use it as a context manager.
    """

    _kind = "fault-proxy"

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mode: str = PASS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        upstream_timeout: float = 5.0,
    ) -> None:
        _check_mode(mode)
        super().__init__(host, port, max_connections)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.upstream_timeout = upstream_timeout
        self._mode = mode
        self._mode_lock = threading.Lock()  # serializes mode changes (each may wait for the accept thread)

    def start(self) -> FaultProxy:
        self._start(listening=self._mode != REFUSE)
        return self

    def __enter__(self) -> FaultProxy:
        return self

    def __repr__(self) -> str:
        return f"<FaultProxy {self.url} -> {self.upstream_host}:{self.upstream_port} mode={self.mode}>"

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.set_mode(value)

    def set_mode(self, mode: str) -> None:
        """Switch to ``mode``; when this returns, new connections meet it and older ones have been closed.

        Raises ``ValueError`` for an unknown mode and ``OSError`` if the port cannot be listened on again.
        """
        _check_mode(mode)
        with self._mode_lock:
            with self._lock:
                previous = self._mode
                if mode == previous:
                    return
                self._mode = mode
            if (previous == REFUSE) != (mode == REFUSE):
                self._set_listening(mode != REFUSE)
            with self._lock:
                for connection in self._connections:
                    if connection.mode != mode:  # same mode: accepted after the switch, leave it alone
                        connection.interrupt()

    def _mode_for_new_connection(self) -> str:
        return self._mode

    def _handle(self, connection: _Connection) -> None:
        mode = connection.mode
        sock = connection.sock
        if mode in (RESET, REFUSE):  # REFUSE: accepted in the instant before the listener closed
            _arm_reset(sock)
        elif mode == HANG:
            self._hang(sock)
        elif mode == SLOWDOWN:
            self._answer(sock, slowdown=True)
        elif mode == GARBAGE:
            self._answer(sock, slowdown=False)
        else:
            self._relay(connection)

    @staticmethod
    def _hang(sock: socket.socket) -> None:
        """Read and drop everything; return only when the client closes or the proxy interrupts us."""
        try:
            while sock.recv(CHUNK_SIZE):
                pass
        except OSError:
            pass

    @staticmethod
    def _answer(sock: socket.socket, *, slowdown: bool) -> None:
        sock.settimeout(REQUEST_TIMEOUT)
        request = _read_head(sock)
        if request is None:
            return
        head, rest = request
        _, target, headers = _parse_head(head)
        _discard_body(sock, headers, len(rest))
        response = slowdown_response(target.split("?", 1)[0]) if slowdown else garbage_response()
        try:
            sock.sendall(response)
        except OSError:
            return
        _lingering_close_prep(sock)

    def _relay(self, connection: _Connection) -> None:
        try:
            upstream = socket.create_connection((self.upstream_host, self.upstream_port), timeout=self.upstream_timeout)
        except OSError as exc:
            logger.debug("fault-proxy: upstream %s:%s unreachable: %s", self.upstream_host, self.upstream_port, exc)
            _arm_reset(connection.sock)
            return
        upstream.settimeout(None)
        with self._lock:
            connection.upstream = upstream
            interrupted = connection.interrupted
        if interrupted:
            return  # the mode changed (or stop()) while connecting; _serve closes both sockets
        client = connection.sock
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            open_directions = 2
            while open_directions:
                for key, _ in selector.select():
                    source = key.fileobj
                    target: socket.socket = key.data
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(CHUNK_SIZE)
                    except OSError:
                        return
                    if data:
                        try:
                            target.sendall(data)
                        except OSError:
                            return
                        continue
                    # EOF from one side: pass the half-close on and keep relaying the other direction.
                    selector.unregister(source)
                    open_directions -= 1
                    try:
                        target.shutdown(socket.SHUT_WR)
                    except OSError:
                        return


class Listener(_TcpServer):
    """A TCP listener that records every connection and answers a meaningless ``200`` (:data:`UNTRUSTED_BODY`).

    Create it with :func:`start_listener`. :attr:`hits` is the number of accepted connections, :attr:`requests`
    the first bytes (up to the end of the request head) each one sent.
    """

    _kind = "tripwire-listener"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = DEFAULT_MAX_CONNECTIONS
    ) -> None:
        super().__init__(host, port, max_connections)
        self._requests: list[bytes] = []

    def start(self) -> Listener:
        self._start(listening=True)
        return self

    def __enter__(self) -> Listener:
        return self

    def __repr__(self) -> str:
        return f"<Listener {self.url} hits={self.hits}>"

    @property
    def hits(self) -> int:
        """Connections accepted so far; 0 means nothing ever reached this port."""
        return self.connections

    @property
    def requests(self) -> list[bytes]:
        """The first bytes of every connection, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def _handle(self, connection: _Connection) -> None:
        sock = connection.sock
        sock.settimeout(REQUEST_TIMEOUT)
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer and len(buffer) < MAX_HEAD:
                data = sock.recv(CHUNK_SIZE)
                if not data:
                    break
                buffer += data
        except OSError:
            pass
        with self._lock:
            self._requests.append(buffer)
        if not buffer:
            return
        _, _, headers = _parse_head(buffer.partition(b"\r\n\r\n")[0])
        _discard_body(sock, headers, len(buffer.partition(b"\r\n\r\n")[2]))
        try:
            sock.sendall(_http_response("200 OK", "text/plain", UNTRUSTED_BODY.encode()))
        except OSError:
            return
        _lingering_close_prep(sock)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown fault-proxy mode {mode!r}; expected one of {', '.join(sorted(MODES))}")


def start_fault_proxy(
    upstream_host: str,
    upstream_port: int,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    mode: str = PASS,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    upstream_timeout: float = 5.0,
) -> FaultProxy:
    """Start a :class:`FaultProxy` on ``host:port`` (a free port by default) in front of the upstream."""
    return FaultProxy(
        upstream_host,
        upstream_port,
        host,
        port,
        mode=mode,
        max_connections=max_connections,
        upstream_timeout=upstream_timeout,
    ).start()


def start_listener(host: str = "127.0.0.1", port: int = 0) -> Listener:
    """Start a :class:`Listener` on ``host:port`` (a free port by default)."""
    return Listener(host, port).start()
