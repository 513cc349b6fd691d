"""The one botocore configuration every CORTX client is built with: server side, pull side and dev servers.

CORTX v1 rejects the flexible-checksum headers and trailer uploads that botocore >= 1.36 sends by
default, and only path-style addressing works without per-bucket DNS. Clients come from a botocore
session that reads ISO 8601 timestamps with the standard library (``botocore_session``). Imports
botocore only (the pull side uses it without Django).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime

import botocore.loaders
import botocore.session
from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
from botocore.config import Config
from botocore.utils import parse_timestamp as botocore_parse_timestamp

# The signing region of stores that have no regions (CORTX, Ceph RGW, SeaweedFS, MinIO all accept it).
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class ClientLimits:
    """How long and how often a client tries, and how many connections it keeps."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    max_pool_connections: int = 32


DEFAULT_LIMITS = ClientLimits()


def botocore_config(limits: ClientLimits = DEFAULT_LIMITS, *, path_style: bool = True) -> Config:
    """SigV4, path-style (or virtual-host) addressing, checksums only when required, bounded retries."""
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=limits.connect_timeout,
        read_timeout=limits.read_timeout,
        retries={"mode": "standard", "max_attempts": limits.max_attempts},
        max_pool_connections=limits.max_pool_connections,
        tcp_keepalive=True,
    )


def parse_timestamp(value):
    """botocore's timestamp parser, with ISO 8601 (the ``LastModified`` of every listed object) read by the
    standard library.

    botocore parses every timestamp with dateutil: about 45 us each, three quarters of the CPU of parsing a
    1,000-key ListObjectsV2 page (66 ms against about 19 ms on this project's benchmark machine), which a sync pays
    for every object of the bucket. Other forms (HTTP dates in headers, epoch seconds) go to botocore's parser.
    """
    if isinstance(value, str) and value[:4].isdigit():
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return botocore_parse_timestamp(value)


# One data loader for every session of the process. Each new session would otherwise read and parse the S3 model,
# its endpoint rules and the partitions again: 80-130 ms for each new client, 9-14 ms with the loader shared
# (a storage has an API client and a presign client, a server one per distinct connection). The loader caches
# what it parsed and botocore only reads it.
_LOADER = botocore.loaders.create_loader()


def botocore_session() -> botocore.session.Session:
    """A new botocore session whose clients parse timestamps with ``parse_timestamp`` (botocore's documented
    response-parser defaults, as the AWS CLI sets its own timestamp parser) and share the process's data loader."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _LOADER)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    return session


def warm_up() -> None:
    """Parse the S3 model into the shared loader now (a client is built and dropped; nothing is sent), so that a
    process's first client is cheap too: RQ forks a process per job from a worker that ran this."""
    botocore_session().create_client(
        "s3", region_name=DEFAULT_REGION, aws_access_key_id="warm-up", aws_secret_access_key="warm-up"
    )


# Linux only; elsewhere responses are read as the operating system acknowledges them.
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def ack_at_once(sock) -> None:
    """Acknowledge the response's first segments at once instead of after the delayed-ACK timer (40 ms).

    A server that leaves Nagle's algorithm on holds the rest of a response until its first small segment (the
    headers) is acknowledged, and the client, waiting for more data, delays that acknowledgement: Ceph RGW's beast
    front end by default (``tcp_nodelay=0``) makes each request on a reused connection 40 ms longer, which doubled
    the time of a listing page (docs/performance.md, "Delayed acknowledgements"). Linux leaves quick-ACK mode by
    itself, so it is set again for every response.
    """
    if _TCP_QUICKACK is None or sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
    except OSError:  # not a TCP socket, or closed meanwhile: nothing to speed up
        pass


class _AckAtOnceMixin:
    def getresponse(self, *args, **kwargs):
        ack_at_once(self.sock)
        return super().getresponse(*args, **kwargs)


def wrap_connections(client, mixin: type, prefix: str, attrs: dict | None = None) -> None:
    """Put ``mixin`` in front of the connection classes ``client``'s http session uses at the moment (for http and
    https), so wrappers compose whatever their order: Label Studio's SSRF guard, the endpoint pin, the quick ACK."""
    http_session = client._endpoint.http_session
    current = dict(http_session._pool_classes_by_scheme)
    defaults = {
        "http": (AWSHTTPConnectionPool, AWSHTTPConnection),
        "https": (AWSHTTPSConnectionPool, AWSHTTPSConnection),
    }
    wrapped = {}
    for scheme, (default_pool, default_conn) in defaults.items():
        pool_base = current.get(scheme, default_pool)
        conn_base = getattr(pool_base, "ConnectionCls", default_conn)
        conn_class = type(f"{prefix}{conn_base.__name__}", (mixin, conn_base), dict(attrs or {}))
        wrapped[scheme] = type(f"{prefix}{pool_base.__name__}", (pool_base,), {"ConnectionCls": conn_class})
    http_session._pool_classes_by_scheme = wrapped
    http_session._manager.pool_classes_by_scheme = wrapped


def acknowledge_at_once(client) -> None:
    """Make ``client``'s connections acknowledge each response at once (:func:`ack_at_once`)."""
    wrap_connections(client, _AckAtOnceMixin, "CortxAcking")
