"""The one place where boto3 clients for CORTX storages are configured and built.

Every call the storage type makes (validation, listing, reading task files, media proxying,
presigning, export, delete) goes through :func:`get_client`, so CORTX's requirements are applied
once: SigV4, path-style addressing, no flexible checksums (CORTX rejects ``x-amz-checksum-*`` and
trailer uploads), bounded timeouts with standard retries, and a per-connection trust store. The media
proxy's GET (:func:`stream_object`) and the export's PUT (:func:`put_bytes`) take a client from here too and use
its signer and connection pool.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.response import StreamingBody
from botocore.utils import percent_encode
from io_storages.s3.utils import _guard_client_connections

from .. import conf
from . import ca_bundle, endpoints, signing
from .config import DEFAULT_LIMITS, DEFAULT_REGION, ClientLimits, acknowledge_at_once, botocore_config, botocore_session

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything that determines how a client talks to the store; the client cache key."""

    endpoint_url: str
    region_name: str = DEFAULT_REGION
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    force_path_style: bool = True
    ca_bundle: str = ""
    verify_tls: bool = True
    # Filled in by the factory from admin settings, so a changed setting also changes the key.
    default_ca_bundle: str = ""
    ssrf_guard: bool = True
    limits: ClientLimits = DEFAULT_LIMITS

    @classmethod
    def build(
        cls,
        endpoint_url: str,
        *,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        force_path_style: bool = True,
        ca_bundle_pem: str | None = None,
        verify_tls: bool = True,
    ) -> ConnectionConfig:
        return cls(
            endpoint_url=endpoints.normalize(endpoint_url),
            region_name=(region_name or conf.default_region()).strip(),
            access_key_id=access_key_id or None,
            secret_access_key=secret_access_key or None,
            session_token=session_token or None,
            force_path_style=bool(force_path_style),
            ca_bundle=ca_bundle.normalize(ca_bundle_pem),
            verify_tls=bool(verify_tls),
            default_ca_bundle=conf.default_ca_bundle(),
            ssrf_guard=endpoints.needs_ssrf_guard(endpoint_url),
            limits=ClientLimits(
                connect_timeout=conf.connect_timeout(),
                read_timeout=conf.read_timeout(),
                max_attempts=conf.max_attempts(),
                max_pool_connections=conf.max_pool_connections(),
            ),
        )

    @property
    def verify(self) -> bool | str:
        """botocore's ``verify``: the storage's CA bundle, the admin's default bundle, or False."""
        if not self.verify_tls:
            return False
        if self.ca_bundle:
            return ca_bundle.bundle_path(self.ca_bundle)
        if self.default_ca_bundle:
            return self.default_ca_bundle
        return True


def _create(config: ConnectionConfig, endpoint_url: str, guard: bool, path_style: bool | None = None):
    path_style = config.force_path_style if path_style is None else path_style
    if not config.verify_tls:
        if not conf.allow_insecure_tls():
            raise endpoints.EndpointError(
                "TLS verification is switched off for this storage, but the admin forbids that "
                "(CORTX_ALLOW_INSECURE_TLS=false). Provide the CA bundle instead."
            )
        logger.warning(
            "CORTX storage connection to %s does not verify TLS certificates", endpoints.display(endpoint_url)
        )
    if guard:
        # Re-checked at connection time too (below): DNS can change after the storage was saved.
        endpoints.check_ssrf(endpoint_url)
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token,
        botocore_session=botocore_session(),
    )
    client = session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=config.region_name,
        verify=config.verify,
        config=botocore_config(config.limits, path_style=path_style),
    )
    if guard:
        _guard_client_connections(client)
    acknowledge_at_once(client)
    # Every socket goes to this endpoint's host and port, trusted or not, whatever a URL parser made of it.
    endpoints.pin_client_connections(client, endpoint_url, virtual_hosts=not path_style)
    return client


class _ClientCache:
    """A small LRU of clients: building one costs ~100 ms, and boto3 clients are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, object] = OrderedDict()

    def get(self, key: tuple, factory):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        client = factory()
        with self._lock:
            self._items[key] = client
            self._items.move_to_end(key)
            while len(self._items) > max(1, conf.client_cache_size()):
                self._items.popitem(last=False)
        return client

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _ClientCache()


def get_client(config: ConnectionConfig):
    """The boto3 S3 client for this configuration (cached; every field is part of the key)."""
    return _cache.get(("api", config), lambda: _create(config, config.endpoint_url, config.ssrf_guard))


def get_presign_client(config: ConnectionConfig, public_endpoint: str | None = None):
    """A client whose presigned URLs name the host browsers use; it never opens a connection itself.

    Presigned URLs are always path-style: browsers cannot resolve per-bucket host names on-premises.
    """
    endpoint = endpoints.normalize(public_endpoint) if public_endpoint else config.endpoint_url
    return _cache.get(("presign", config, endpoint), lambda: _create(config, endpoint, False, path_style=True))


def clear_cache() -> None:
    _cache.clear()


@dataclass
class ObjectStream:
    """A GetObject reply as the media proxy needs it: the status (200, 206 or 304), the reply's headers
    (lower-case names) and the body, read as it arrives."""

    status: int
    headers: dict[str, str]
    body: StreamingBody


# The two requests the plugin makes per object at volume (a proxied image, an exported annotation) go without
# botocore's per-call pipeline (parameter validation, endpoint rules, event hooks, response parsing): signed with the
# client's credentials, region and signature version (``signing``, what the client's own signer gives them, without
# its generic work) and sent over the client's own connection pool, so its TLS trust, SSRF guard and socket pinning
# all apply. In a microbenchmark against SeaweedFS that pipeline was 0.6 ms of CPU per request (a 512 KiB GET: 1.5
# against 0.9 ms). Retries are botocore's: a failure it would retry hands the request to the
# client's own call. Virtual-host clients keep botocore's calls: whether a bucket can be a host name is decided by
# botocore's endpoint rules.
_ERROR_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _direct(client) -> bool:
    return (client.meta.config.s3 or {}).get("addressing_style") != "virtual"


def _signed(
    client,
    operation: str,
    method: str,
    bucket: str,
    key: str,
    headers: dict[str, str],
    data: bytes = b"",
    **request: Any,
) -> AWSRequest:
    url = f"{client.meta.endpoint_url}/{percent_encode(bucket)}/{percent_encode(key, safe='/~')}"
    added = signing.headers(client, method, url, headers, data)
    if added is not None:
        return AWSRequest(method=method, url=url, headers={**headers, **added}, data=data, **request)
    signed = AWSRequest(method=method, url=url, headers=headers, data=data, **request)
    client._request_signer.sign(operation, signed)  # another signature version, or no credentials: botocore decides
    return signed


def _error(operation: str, status: int, head: bytes, headers: dict[str, str]) -> ClientError:
    """The ``ClientError`` botocore would raise for an S3 error reply; only its code is read from ``head`` (the
    reply's first 4 KiB)."""
    code = _ERROR_CODE.search(head.decode("utf-8", "replace"))
    error = {"Code": code.group(1) if code else str(status), "Message": ""}
    return ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers}}, operation
    )


def stream_object(client, bucket: str, key: str, headers: dict[str, str] | None = None) -> ObjectStream:
    """GetObject for the media proxy, without botocore's per-call pipeline (see above).

    ``headers``: Range, If-None-Match. 200, 206 and 304 are replies. A failure botocore would retry (a transport
    error, a 5xx or 429 reply) is handed to ``client.get_object``, which retries what the client's retry policy
    retries and raises what it raises, as before; any other reply (an S3 error, a redirect from something that is
    not the store) raises ``ClientError`` as ``get_object`` would.
    """
    headers = headers or {}
    streamed = _direct_get(client, bucket, key, headers) if _direct(client) else None
    return streamed or _stream_with_client(client, bucket, key, headers)


def _direct_get(client, bucket: str, key: str, headers: dict[str, str]) -> ObjectStream | None:
    """The reply of one GET over the client's pool; None for a failure botocore's retries should handle."""
    request = _signed(client, "GetObject", "GET", bucket, key, headers=dict(headers), stream_output=True)
    try:
        response = client._endpoint.http_session.send(request.prepare())
    except (HTTPClientError, BotoConnectionError):
        return None
    status, raw = response.status_code, response.raw
    reply = {name.lower(): value for name, value in response.headers.items()}
    if status in (200, 206):
        length = reply.get("content-length")
        return ObjectStream(status, reply, StreamingBody(raw, int(length) if length and length.isdigit() else None))
    if status == 304:  # no body, whatever Content-Length says (the object's size, on some stores)
        body = StreamingBody(raw, 0)
        body.read()  # hands the connection back to the pool
        return ObjectStream(304, reply, body)
    try:
        head = raw.read(4096, decode_content=False) or b""
    finally:
        raw.close()  # a fully read reply has gone back to the pool already; a longer one is not reused
    if status >= 500 or status == 429:
        return None
    raise _error("GetObject", status, head, reply)


def put_bytes(client, bucket: str, key: str, body: bytes, content_type: str) -> None:
    """PutObject of a small body (an exported annotation), without botocore's per-call pipeline (see above).

    Any failure (a transport error, any error reply) hands the upload to ``client.put_object``, which retries what
    the client's retry policy retries and raises what it raises, exactly as before; a PUT is idempotent. No
    checksum headers: CORTX rejects them (``config.botocore_config``).
    """
    if _direct(client):
        request = _signed(client, "PutObject", "PUT", bucket, key, data=body, headers={"Content-Type": content_type})
        try:
            if client._endpoint.http_session.send(request.prepare()).status_code < 300:
                return
        except (HTTPClientError, BotoConnectionError):
            pass
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def _stream_with_client(client, bucket: str, key: str, headers: dict[str, str]) -> ObjectStream:
    params = {"Bucket": bucket, "Key": key}
    if headers.get("Range"):
        params["Range"] = headers["Range"]
    if headers.get("If-None-Match"):
        params["IfNoneMatch"] = headers["If-None-Match"]
    try:
        response = client.get_object(**params)
    except ClientError as exc:
        metadata = exc.response.get("ResponseMetadata", {})
        if metadata.get("HTTPStatusCode") != 304:
            raise
        return ObjectStream(304, dict(metadata.get("HTTPHeaders") or {}), StreamingBody(io.BytesIO(), 0))
    reply = dict(response["ResponseMetadata"].get("HTTPHeaders") or {})
    return ObjectStream(response["ResponseMetadata"]["HTTPStatusCode"], reply, response["Body"])
