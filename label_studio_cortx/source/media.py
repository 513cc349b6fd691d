"""Media for the labeling UI: the object streamed through Label Studio's proxy, or a presigned link.

CORTX v1 has neither presigned URLs nor CORS, so the proxy is the default; a presigned link names the
public endpoint browsers use.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from django.utils.http import http_date

from ..connection import client as client_factory
from ..connection.errors import StorageError, translated

logger = logging.getLogger(__name__)


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://bucket/key`` URI, the key taken verbatim.

    Not a URL parse: S3 keys may hold ``?``, ``#``, ``%``, ``+``, spaces and a leading slash, which
    ``urlparse`` would read as a query, a fragment or an escape.
    """
    _, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    return bucket, key


def presigned_url(storage, url: str) -> str:
    """What Label Studio's resolver asks for: a presigned URL, or the object inline when presign is off."""
    bucket, key = split_uri(url)
    if not storage.presign:
        # Same contract as Label Studio's S3 resolver: a data URI when links must not leave the server.
        with translated(storage.s3_endpoint or "", bucket=bucket, what="media read"):
            response = storage.get_client().get_object(Bucket=bucket, Key=key)
        content_type = response.get("ContentType") or "application/octet-stream"
        return f"data:{content_type};base64," + base64.b64encode(response["Body"].read()).decode()
    params = {"Bucket": bucket, "Key": key}
    content_type, _ = mimetypes.guess_type(key)
    if content_type:
        params["ResponseContentType"] = content_type
    presigner = client_factory.get_presign_client(storage.connection_config(), storage.public_endpoint)
    return presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=int(storage.presign_ttl) * 60)


def open_stream(
    storage, uri: str, range_header: str | None = None, if_none_match: str | None = None, client=None
) -> tuple[Any, str | None, dict]:
    """(body, content type, metadata) of an object for Label Studio's media proxy, forwarding a single Range;
    (None, None, {}) when the store cannot give it (logged; the proxy answers the browser with an error).

    ``if_none_match``: the store ETag the browser's cached copy has. The GET is then conditional, and an
    unchanged object comes back as 304 with no body, from the store to the browser. ``client``: the storage's
    client when the caller has it already (the media gateway keeps it with the storage row).
    """
    bucket, key = split_uri(uri)
    headers = {}
    if range_header:
        headers["Range"] = range_header
    if if_none_match:
        headers["If-None-Match"] = f'"{if_none_match}"'
    try:
        with translated(storage.s3_endpoint or "", bucket=bucket, what="media stream"):
            reply = client_factory.stream_object(client or storage.get_client(), bucket, key, headers)
    except StorageError as exc:
        logger.warning("CORTX storage %s: cannot stream %s: %s", storage.pk, uri, exc)
        return None, None, {}
    length = reply.headers.get("content-length")
    metadata = {
        "ETag": reply.headers.get("etag") or (f'"{if_none_match}"' if reply.status == 304 else None),
        "ContentLength": int(length) if length and length.isdigit() and reply.status != 304 else None,
        "ContentRange": reply.headers.get("content-range"),
        "LastModified": _last_modified(reply.headers.get("last-modified")),
        "StatusCode": reply.status,
    }
    return reply.body, reply.headers.get("content-type") if reply.status != 304 else None, metadata


# RFC 9110's preferred HTTP date, what S3 servers send: passed on as it is. Parsing it into a datetime and writing it
# again, for every image, was about 2% of the web process's Python time (docs/performance.md).
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT"
)


def _last_modified(value: str | None) -> str | None:
    """The store's ``Last-Modified`` for the browser: as sent when it is an IMF-fixdate, else read as an HTTP date
    and written as one; None when it is missing or unreadable."""
    if not value:
        return None
    if _IMF_FIXDATE.fullmatch(value):
        return value
    try:
        return http_date(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass
class MediaResponse:
    """What the browser gets for a proxied object: status, headers and a body to iterate (then close)."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
_ETAG = re.compile(r'(?:W/)?"([0-9A-Fa-f-]{1,80})"')


def bounded_range(header: str | None, max_size: int) -> str | None:
    """A single ``bytes=start-[end]`` range capped at ``max_size`` bytes (Label Studio's proxy rule: a worker is
    never held by an open-ended read of a large video; a suffix range, which it does not support, reads from the
    start); anything else is ignored and the whole object is sent."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None
    if not match.group(1):  # a suffix range: Label Studio's proxy serves the object from its start instead
        return f"bytes=0-{max_size - 1}"
    start, end = int(match.group(1)), match.group(2)
    if start == 0 and end in ("", "0"):
        return f"bytes=0-{end}"  # a header probe: as asked
    last = start + max_size - 1 if end in ("", "0") else min(int(end), start + max_size - 1)
    if last < start:
        return None
    return f"bytes={start}-{last}"


def store_etag(if_none_match: str | None) -> str | None:
    """The store ETag a browser revalidates with (``If-None-Match: "<etag>"``); only hex ETags are forwarded."""
    match = _ETAG.fullmatch((if_none_match or "").strip())
    return match.group(1) if match else None


def serve(
    storage,
    uri: str,
    range_header: str | None = None,
    if_none_match: str | None = None,
    head: bool = False,
    client=None,
) -> MediaResponse:
    """The object at ``uri`` for the browser, as Label Studio's proxy sends it (Range bounded, streamed in
    RESOLVER_PROXY_BUFFER_SIZE chunks for at most RESOLVER_PROXY_TIMEOUT seconds, private caching) plus two guards
    it lacks: ``nosniff`` and a sandbox CSP, because the bytes are a bucket's and the origin is Label Studio's.
    ``If-None-Match`` with the store's ETag becomes a conditional GET, so a repeat view is a 304 without a body."""
    from django.conf import settings

    byte_range = bounded_range(range_header, settings.RESOLVER_PROXY_MAX_RANGE_SIZE)
    # Label Studio's switch for its proxy's ETag revalidation applies to this proxy too.
    revalidate = settings.RESOLVER_PROXY_ENABLE_ETAG_CACHE and not byte_range
    etag = store_etag(if_none_match) if revalidate else None
    stream, content_type, metadata = open_stream(storage, uri, byte_range, if_none_match=etag, client=client)
    if stream is None:
        # The store's own message stays in the server log (open_stream): it may name internal hosts.
        body = b'{"error": "Storage stream failed while proxying data"}'
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        return MediaResponse(424, headers, iter((body,)))
    if not content_type or "octet-stream" in content_type:
        content_type = mimetypes.guess_type(split_uri(uri)[1])[0] or content_type
    headers = [
        ("Content-Type", content_type or "application/octet-stream"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "sandbox"),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", f"private, max-age={settings.RESOLVER_PROXY_CACHE_TIMEOUT}, must-revalidate"),
    ]
    if metadata.get("ETag"):
        headers.append(("ETag", f'"{metadata["ETag"].strip(chr(34))}"'))
    status = metadata["StatusCode"]
    if status == 304:
        stream.close()
        return MediaResponse(304, [h for h in headers if h[0] in ("ETag", "Cache-Control")], iter(()))
    if metadata.get("ContentLength") is not None:
        headers.append(("Content-Length", str(metadata["ContentLength"])))
    if metadata.get("ContentRange"):
        headers.append(("Content-Range", metadata["ContentRange"]))
    if metadata.get("LastModified") is not None:
        headers.append(("Last-Modified", metadata["LastModified"]))
    if head:
        stream.close()
        return MediaResponse(status, headers, iter(()))
    # Label Studio's own chunker: RESOLVER_PROXY_BUFFER_SIZE chunks, cut off after RESOLVER_PROXY_TIMEOUT, then closed.
    from io_storages.proxy_api import ResolveStorageUriAPIMixin

    return MediaResponse(status, headers, ResolveStorageUriAPIMixin().time_limited_chunker(stream))
