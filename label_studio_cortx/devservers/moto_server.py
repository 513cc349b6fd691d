"""A real, authenticating S3 endpoint for tests: moto's standalone server in a subprocess.

Why a subprocess and not ``mock_aws``: the storage plugin talks to S3 over the network with its own boto3
client, endpoint URL, CA bundle and addressing style. Only a real socket exercises all of that, and only a
separate process keeps moto's global state (backends, the auth counter) out of the test process.

Why authentication matters: moto accepts any credentials by default, which would let a plugin that
signs with the wrong secret, the wrong host or the wrong region pass. moto's server verifies SigV4 once
``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served (see :data:`BOOTSTRAP_REQUEST_COUNT`); those first
requests create an IAM user with an access key and an allow-all policy, and every later request must be signed
with that key, as on a real store.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from ..connection.config import DEFAULT_REGION, ClientLimits, botocore_config
from .processes import die_with_parent
from .tls import issue_server_tls

logger = logging.getLogger(__name__)


# moto counts unauthenticated requests in ActionAuthenticatorMixin.request_count (moto/core/authorization.py):
# every call of _authenticate_and_authorize_action() made while request_count < INITIAL_NO_AUTH_ACTION_COUNT
# increments it and skips verification; once the count is reached every call verifies the signature and
# the IAM policy. IAM actions pass through it exactly once each (BaseResponse.call_action), and the
# /moto-api/* endpoints used for the readiness poll never do. The bootstrap needs exactly three IAM calls:
# CreateUser, CreateAccessKey and PutUserPolicy. Allowing more would let the next request(s) - e.g. the
# tests' CreateBucket - through unauthenticated; allowing fewer would make PutUserPolicy fail.
BOOTSTRAP_REQUEST_COUNT = 3

_ALLOW_ALL_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port on ``host``.

    There is an unavoidable window between closing this probe socket and the subprocess binding the port;
    :func:`start_moto` therefore retries with a new port if the server reports "Address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def unique_bucket_name(prefix: str = "test") -> str:
    """A valid, collision-free bucket name (3-63 chars, lower case) for tests sharing a session endpoint."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"[:63].lower()


# Test clients fail fast (two attempts) instead of backing off for long on a store that is not up yet.
TEST_LIMITS = ClientLimits(connect_timeout=10.0, read_timeout=60.0, max_attempts=2)


def s3_client_config(**limits: Any) -> Config:
    """The connection's botocore configuration (path-style, checksums only when required) with test limits;
    keyword arguments override :class:`~label_studio_cortx.connection.config.ClientLimits` fields."""
    return botocore_config(replace(TEST_LIMITS, **limits))


# Building a boto3 Session loads and parses service models (~0.3 s); one shared Session makes clients cheap.
# Sessions are not thread-safe (clients are), hence the lock around client creation.
_SESSION: boto3.session.Session | None = None
_SESSION_LOCK = threading.Lock()


def _new_client(service_name: str, **kwargs: Any) -> BaseClient:
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(service_name, **kwargs)


@dataclass
class S3Endpoint:
    """A running S3 endpoint plus the credentials that are valid on it.

    Stop it with :meth:`stop` or use it as a context manager. A forgotten endpoint is still stopped when it is
    garbage-collected or at interpreter exit, so no moto process outlives the test run.
    """

    url: str
    access_key: str
    secret_key: str = field(repr=False)  # kept out of pytest's failure output
    ca_pem: str | None = None
    ca_path: str | None = None
    process: subprocess.Popen[bytes] | None = None
    region: str = DEFAULT_REGION
    log_path: str | None = None
    # Cleanup callbacks, run last-registered-first by stop(); each is a weakref.finalize or plain callable.
    _cleanups: list[Callable[[], Any]] = field(default_factory=list, repr=False, compare=False)

    @property
    def https(self) -> bool:
        return self.url.startswith("https://")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parsed = urlsplit(self.url)
        return parsed.port or (443 if parsed.scheme == "https" else 80)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3...client("s3", **kwargs)`` except ``config`` (see :func:`s3_client_config`)."""
        return {
            "endpoint_url": self.url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            # None means botocore's default bundle (certifi), which does not contain our private CA.
            "verify": self.ca_path,
        }

    def client(self, service_name: str = "s3", *, config: Config | None = None, **kwargs: Any) -> BaseClient:
        """A boto3 client for this endpoint: path-style, checksums "when_required", the endpoint's CA.

        ``config`` is merged over the defaults; other keyword arguments override :meth:`client_kwargs`
        (e.g. ``aws_secret_access_key="wrong"`` or ``verify=None``).
        """
        merged = s3_client_config()
        if config is not None:
            merged = merged.merge(config)
        params = self.client_kwargs()
        params.update(kwargs)
        return _new_client(service_name, config=merged, **params)

    def stop(self) -> None:
        """Stop the server (and anything started with it); safe to call more than once."""
        errors: list[BaseException] = []
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # keep going: every resource must get its chance to be released
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> S3Endpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, wait, SIGKILL if needed, and always reap the child so no zombie is left behind."""
    if process.poll() is None:
        process.terminate()  # moto.server installs a SIGTERM handler that exits cleanly
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    else:
        process.wait()


def _stop_process_and_cleanup(process: subprocess.Popen[bytes], tmp_dir: str | None) -> None:
    try:
        _terminate(process)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no server log>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty server log>"


def _poll_ready(host: str, port: int, ssl_context: ssl.SSLContext | None) -> bool:
    """One readiness probe. ``/moto-api/config`` does not go through moto's auth counter (checked in tests)."""
    conn: http.client.HTTPConnection
    if ssl_context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=2, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/moto-api/config")
        response = conn.getresponse()
        response.read()
        return response.status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _launch(host: str, port: int, tls_args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_REQUEST_COUNT)
    env["MOTO_PORT"] = str(port)
    env["PYTHONUNBUFFERED"] = "1"
    # TEST_SERVER_MODE makes moto act as a *client* of another server; it must not leak into the server.
    env.pop("TEST_SERVER_MODE", None)
    # werkzeug logs every request; a file (not a pipe nobody drains) keeps the server from blocking on stderr.
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port), *tls_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent(),
        )


def _bootstrap_credentials(url: str, verify: str | None, region: str, user_name: str) -> tuple[str, str]:
    """Spend the unauthenticated request budget on an IAM user, its access key and an allow-all policy."""
    # Retries are off: a retried call would consume a second unit of the budget and the last bootstrap call
    # would then be rejected as unauthenticated.
    iam = _new_client(
        "iam",
        endpoint_url=url,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        region_name=region,
        verify=verify,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=30),
    )
    iam.create_user(UserName=user_name)  # 1
    key = iam.create_access_key(UserName=user_name)["AccessKey"]  # 2
    iam.put_user_policy(UserName=user_name, PolicyName="allow-all", PolicyDocument=_ALLOW_ALL_POLICY)  # 3
    return key["AccessKeyId"], key["SecretAccessKey"]


def _assert_auth_enforced(endpoint: S3Endpoint) -> None:
    """Fail loudly if moto would still accept an unknown key (e.g. a moto change in how requests are counted)."""
    bogus = endpoint.client(aws_access_key_id="AKIA" + uuid.uuid4().hex[:16].upper(), aws_secret_access_key="x")
    try:
        bogus.list_buckets()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidAccessKeyId":
            return
        raise RuntimeError(f"moto auth check: unexpected error {exc!r}") from exc
    raise RuntimeError(
        "moto accepted an unknown access key after the bootstrap: INITIAL_NO_AUTH_ACTION_COUNT "
        f"({BOOTSTRAP_REQUEST_COUNT}) no longer matches how moto counts requests"
    )


def start_moto(
    https: bool = False,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    tmp_dir: str | os.PathLike[str] | None = None,
    region: str = DEFAULT_REGION,
    user_name: str = "label-studio-cortx-test",
    startup_timeout: float = 30.0,
) -> S3Endpoint:
    """Start ``python -m moto.server`` on ``host`` (a free port unless ``port`` is given) with SigV4 auth on.

    With ``https=True`` the server presents a certificate for ``127.0.0.1``/``localhost`` issued by a fresh
    private CA; ``ca_pem``/``ca_path`` of the result hold that CA. TLS files and the server log go to
    ``tmp_dir`` (a new temporary directory, removed on stop, when not given).

    Raises ``RuntimeError`` with the tail of the server's log if it does not come up within ``startup_timeout``.
    """
    owned_dir = tmp_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="moto-s3-")) if tmp_dir is None else Path(tmp_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    process: subprocess.Popen[bytes] | None = None
    try:
        tls = issue_server_tls(work_dir, prefix="moto") if https else None
        tls_args = ["--ssl-cert", tls.cert_path, "--ssl-key", tls.key_path] if tls else []
        client_ctx = tls.client_context() if tls else None
        scheme = "https" if https else "http"
        log_path = work_dir / f"moto-{uuid.uuid4().hex[:8]}.log"

        attempts = 1 if port is not None else 5
        for attempt in range(attempts):
            chosen = port if port is not None else free_port(host)
            process = _launch(host, chosen, tls_args, log_path)
            deadline = time.monotonic() + startup_timeout
            ready = False
            while not ready and process.poll() is None and time.monotonic() < deadline:
                ready = _poll_ready(host, chosen, client_ctx)
                if not ready:
                    time.sleep(0.05)
            if ready:
                break
            # Not up: reap it, then either retry (lost the free-port race) or report why.
            _terminate(process)
            tail = _log_tail(log_path)
            if "Address already in use" in tail and attempt + 1 < attempts:
                logger.debug("moto lost the race for port %s, retrying", chosen)
                continue
            raise RuntimeError(
                f"moto server did not start on {scheme}://{host}:{chosen} within {startup_timeout:g}s "
                f"(exit code {process.returncode}); log tail:\n{tail}"
            )
        assert process is not None
        url = f"{scheme}://{host}:{chosen}"

        try:
            access_key, secret_key = _bootstrap_credentials(url, tls.ca_path if tls else None, region, user_name)
        except Exception as exc:
            raise RuntimeError(
                f"moto server at {url} failed its IAM bootstrap: {exc}; log tail:\n{_log_tail(log_path)}"
            ) from exc
    except BaseException:
        if process is not None:
            _terminate(process)
        if owned_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        raise

    endpoint = S3Endpoint(
        url=url,
        access_key=access_key,
        secret_key=secret_key,
        ca_pem=tls.ca_pem if tls else None,
        ca_path=tls.ca_path if tls else None,
        process=process,
        region=region,
        log_path=str(log_path),
    )
    # Bound to the endpoint object (not the process): a dropped, unstopped endpoint is stopped when collected,
    # and weakref.finalize also runs at interpreter exit.
    endpoint._cleanups.append(
        weakref.finalize(endpoint, _stop_process_and_cleanup, process, str(work_dir) if owned_dir else None)
    )
    try:
        _assert_auth_enforced(endpoint)
    except BaseException:
        endpoint.stop()
        raise
    return endpoint
