"""Label Studio with the CORTX plugin in a subprocess, on a free loopback port: for the demo and the E2E tests.

:func:`start_label_studio` runs ``python -m label_studio_cortx.cli start`` with its own data directory (SQLite),
a user (and optionally a legacy API token for REST calls), ``CORTX_TRUSTED_ENDPOINTS`` for loopback S3
endpoints, error reporting and update checks switched off, and waits until ``/health/`` answers. The returned
:class:`LabelStudioServer` stops it cleanly (SIGINT, then SIGTERM, then SIGKILL) and can hand out an
authenticated ``requests`` session.

The first start on a fresh data directory applies every migration, which takes about a minute on a small
machine; pass ``progress`` to show something meanwhile.

One module: starting, waiting for, logging into and stopping one Label Studio process belong together.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .processes import die_with_parent

DEFAULT_USERNAME = "admin@example.com"
STARTUP_TIMEOUT = 300.0

# Django's runserver announces the address it really bound; Label Studio moves to the next port when the asked
# one is busy, so this line (not the asked port) says where the server is. gunicorn and uwsgi say it their own way.
_STARTED = re.compile(
    r"(?:(?:Starting development server at|Listening at:) https?://|uWSGI http bound on )([^:/\s]+):(\d+)"
)


class LabelStudioStartError(RuntimeError):
    """Label Studio did not come up; the message ends with the tail of its log."""


class ApiError(RuntimeError):
    """A REST call answered an HTTP error; ``detail`` is Label Studio's message (or the start of the body)."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} answered HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def free_port(host: str = "127.0.0.1") -> int:
    """A currently unused TCP port on ``host`` (there is a small race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> int | None:
    """Ask ``process`` to stop (SIGINT, as Ctrl-C would), then SIGTERM, then SIGKILL; always reap it."""
    if process.poll() is not None:
        return process.returncode
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.wait(timeout=5)


def _child_setup(restore_sigint: bool) -> Callable[[], None]:
    """The server's ``preexec_fn``: it dies with its parent (a killed test run or demo leaves no server behind).

    ``restore_sigint``: a parent started in the background by a shell ignores SIGINT, and the child would inherit
    that: give the server back the default so that stop() can end it like Ctrl-C.
    """
    die = die_with_parent()

    def setup() -> None:
        if restore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        die()

    return setup


def _cleanup(process: subprocess.Popen, owned_dir: str | None) -> None:
    try:
        stop_process(process)
    finally:
        if owned_dir:
            shutil.rmtree(owned_dir, ignore_errors=True)


@dataclass
class LabelStudioServer:
    """A running Label Studio; ``url`` has no trailing slash. Stop it with :meth:`stop` or a ``with`` block."""

    url: str
    host: str
    port: int
    data_dir: Path
    username: str
    password: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None
    _finalizer: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log_path, lines) if self.log_path else "<no log>"

    def api(self):
        """A ``requests.Session`` sending the legacy API token (needs ``token`` when starting)."""
        import requests

        if not self.token:
            raise RuntimeError("start_label_studio(token=...) is needed for REST API calls")
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        return _BaseURLSession(session, self.url)

    def browser(self):
        """A ``requests.Session`` logged in as a browser is: Label Studio's login form (with its CSRF token), then
        only the session cookie. Its requests take full URLs."""
        import requests

        session = requests.Session()
        session.get(f"{self.url}/user/login/", timeout=30)
        response = session.post(
            f"{self.url}/user/login/",
            data={
                "email": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.url}/user/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302 or "sessionid" not in session.cookies:
            raise RuntimeError(f"login as {self.username} failed: HTTP {response.status_code}")
        return session

    def stop(self) -> None:
        """Stop the server and release its port; safe to call more than once."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> LabelStudioServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _BaseURLSession:
    """``session.get("/api/projects")`` relative to the server, raising for HTTP errors unless ``check=False``."""

    def __init__(self, session, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    def request(self, method: str, path: str, *, check: bool = True, timeout: float = 300, **kwargs):
        response = self.session.request(method, self.base_url + path, timeout=timeout, **kwargs)
        if check and response.status_code >= 400:
            raise ApiError(method, path, response.status_code, _error_detail(response))
        return response

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()


def _error_detail(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:2000]
    if isinstance(body, dict):
        messages = [str(body.get("detail") or "")]
        errors = body.get("validation_errors")
        if isinstance(errors, dict):
            for value in errors.values():
                messages.extend(str(v) for v in (value if isinstance(value, list) else [value]))
        text = " ".join(m for m in messages if m and m != "Validation error")
        if text:
            return text
    return str(body)[:2000]


def server_env(
    data_dir: str | os.PathLike[str],
    *,
    username: str,
    password: str,
    token: str | None = None,
    trusted_endpoints: Iterable[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of the Label Studio subprocess (also useful for ``label-studio-cortx`` admin commands)."""
    env = dict(os.environ)
    # A settings module chosen by the caller's environment (e.g. pytest's tests.settings) must not leak in.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_USERNAME": username,
            "LABEL_STUDIO_PASSWORD": password,
            # No error reports, update checks or usage metrics: everything stays on this machine.
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "CORTX_TRUSTED_ENDPOINTS": ",".join(trusted_endpoints),
            "PYTHONUNBUFFERED": "1",
            # Label Studio's exports leave temporary files behind when the server stops mid-export: keep them
            # in the data directory rather than the machine's /tmp.
            "TMPDIR": str(Path(data_dir) / "tmp"),
        }
    )
    (Path(data_dir) / "tmp").mkdir(parents=True, exist_ok=True)
    for name in ("DATABASE_NAME", "LABEL_STUDIO_DATABASE_NAME", "LABEL_STUDIO_USER_TOKEN"):
        env.pop(name, None)
    if token:
        env["LABEL_STUDIO_USER_TOKEN"] = token
        env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] = "true"
    env.update(extra_env or {})
    return env


def start_label_studio(
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    data_dir: str | os.PathLike[str] | None = None,
    username: str = DEFAULT_USERNAME,
    password: str | None = None,
    token: str | None = None,
    trusted_endpoints: Iterable[str] = (),
    extra_env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    timeout: float = STARTUP_TIMEOUT,
    progress: Callable[[float, str], None] | None = None,
    gunicorn_workers: int = 0,
    uwsgi_workers: int = 0,
) -> LabelStudioServer:
    """Start ``label-studio-cortx start`` and wait until it serves ``/health/``.

    ``gunicorn_workers``: serve with gunicorn (``label_studio_cortx.wsgi``, that many worker processes, four
    threads each), the production server the README documents, instead of Django's development server; the
    data directory must have been set up by a ``label-studio-cortx start`` before (migrations, the user).
    ``uwsgi_workers``: the same with uwsgi, the server of Label Studio's Docker image (its HTTP router in front of
    that many processes, four threads each; the ``bench`` extra installs it).

    ``data_dir``: Label Studio's data directory (SQLite database, media); a temporary one, removed on stop, when
    not given. ``port``: the port to ask for (a free one when not given); Label Studio moves to the next free port
    if it is busy, and ``url``/``port`` of the result say where it really listens. ``token``: a legacy API token
    for the user (at least 6 characters), enabling :meth:`LabelStudioServer.api`. ``progress(elapsed, line)`` is
    called about twice a second while waiting, with the last line of Label Studio's output.
    """
    owned_dir = None
    if data_dir is None:
        owned_dir = tempfile.mkdtemp(prefix="ls-cortx-")
        data_dir = owned_dir
    data_path = Path(data_dir).absolute()
    data_path.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(12)
    if token is not None and len(token) <= 5:
        raise ValueError("Label Studio ignores API tokens shorter than 6 characters")
    asked_port = port or free_port(host)
    log_file = Path(log_path) if log_path else data_path / "label-studio.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)

    env = server_env(
        data_path,
        username=username,
        password=password,
        token=token,
        trusted_endpoints=trusted_endpoints,
        extra_env=extra_env,
    )
    command = [
        sys.executable,
        "-m",
        "label_studio_cortx.cli",
        "start",
        "--no-browser",
        "--internal-host",
        host,
        "--port",
        str(asked_port),
        "--data-dir",
        str(data_path),
    ]
    if gunicorn_workers or uwsgi_workers:
        env["DJANGO_SETTINGS_MODULE"] = "label_studio_cortx.settings"
        env.setdefault("CORTX_DB_CONN_MAX_AGE", "60")  # as the README's production server
        env.setdefault("CORTX_DB_PREPARED_STATEMENTS", "1")
    if gunicorn_workers:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "label_studio_cortx.wsgi",
            "--bind",
            f"{host}:{asked_port}",
            "--workers",
            str(gunicorn_workers),
            "--threads",
            "4",
            "--timeout",
            "120",
        ]
    elif uwsgi_workers:
        uwsgi = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
        if uwsgi is None:
            raise LabelStudioStartError("uwsgi is not installed (pip install 'label-studio-cortx[bench]')")
        # Label Studio's deploy/uwsgi.ini, less its logging and recycling: the HTTP router, a master, lazy apps.
        command = [uwsgi, "--http", f"{host}:{asked_port}", "--module", "label_studio_cortx.wsgi:application"]
        command += ["--virtualenv", sys.prefix, "--master", "--processes", str(uwsgi_workers), "--threads", "4"]
        command += ["--enable-threads", "--single-interpreter", "--lazy-apps", "--thunder-lock", "--need-app"]
        command += ["--die-on-term", "--disable-logging", "--buffer-size", "65535", "--post-buffering", "4096"]
        # The image puts nginx in front, which keeps clients' connections open: the router keeps them here.
        command += ["--http-keepalive"]
        command += ["--harakiri", "120", "--ignore-sigpipe", "--ignore-write-errors", "--disable-write-exception"]
    with open(log_file, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting Label Studio on port {asked_port}\n".encode())
        log.flush()
        offset = log.tell()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own process group: a Ctrl-C in the terminal reaches only the caller, which stops the server
            # in order (and the server never sees a half-finished demo set-up).
            start_new_session=True,
            preexec_fn=_child_setup(restore_sigint=signal.getsignal(signal.SIGINT) == signal.SIG_IGN),
        )
    finalizer = weakref.finalize(process, _cleanup, process, owned_dir)
    try:
        actual_port = _wait_until_ready(process, host, log_file, offset, timeout, progress)
    except BaseException:
        finalizer()
        raise
    server = LabelStudioServer(
        url=f"http://{host}:{actual_port}",
        host=host,
        port=actual_port,
        data_dir=data_path,
        username=username,
        password=password,
        token=token,
        process=process,
        log_path=log_file,
    )
    server._finalizer = finalizer
    return server


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _wait_until_ready(
    process: subprocess.Popen,
    host: str,
    log_file: Path,
    offset: int,
    timeout: float,
    progress: Callable[[float, str], None] | None,
) -> int:
    import http.client

    started = time.monotonic()
    port: int | None = None
    last_report = 0.0
    server_errors = 0
    while True:
        elapsed = time.monotonic() - started
        output = _read_from(log_file, offset)
        if process.poll() is not None:
            raise LabelStudioStartError(
                f"Label Studio exited with code {process.returncode} while starting; log tail:\n"
                + "\n".join(output.splitlines()[-40:])
            )
        if elapsed > timeout:
            raise LabelStudioStartError(
                f"Label Studio did not become ready within {timeout:g}s; log tail:\n"
                + "\n".join(output.splitlines()[-40:])
            )
        if port is None:
            match = _STARTED.search(output)
            if match:
                port = int(match.group(2))
        if port is not None:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            try:
                conn.request("GET", "/health/")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return port
                # A broken URL configuration or settings answer 500 for good: report it instead of waiting.
                server_errors = server_errors + 1 if response.status >= 500 else 0
                if server_errors >= 10:
                    raise LabelStudioStartError(
                        f"Label Studio answers /health/ with HTTP {response.status}; log tail:\n"
                        + "\n".join(_read_from(log_file, offset).splitlines()[-40:])
                    )
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        if progress is not None and elapsed - last_report >= 0.5:
            last_report = elapsed
            lines = [line.strip() for line in output.splitlines() if line.strip()]
            progress(elapsed, lines[-1] if lines else "")
        time.sleep(0.2)
