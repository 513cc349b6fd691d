"""Media for the labeling UI: the object streamed through Label Studio's proxy, or a presigned link.

CORTX v1 has neither presigned URLs nor CORS, so the proxy is the default; a presigned link names the
public endpoint browsers use.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
from typing import Any

from botocore.exceptions import ClientError

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


class _NotModified:
    """The body of an object the browser already has: nothing (the store sent none either)."""

    def iter_chunks(self, chunk_size: int = 1024):
        return iter(())

    def close(self) -> None:
        pass


def open_stream(
    storage, uri: str, range_header: str | None = None, if_none_match: str | None = None
) -> tuple[Any, str | None, dict]:
    """(body, content type, metadata) of an object for Label Studio's media proxy, forwarding a single Range;
    (None, None, {}) when the store cannot give it (logged; the proxy answers the browser with an error).

    ``if_none_match``: the store ETag the browser's cached copy has. The GET is then conditional, and an
    unchanged object comes back as 304 with no body, from the store to the browser.
    """
    bucket, key = split_uri(uri)
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if range_header:
        params["Range"] = range_header
    if if_none_match:
        params["IfNoneMatch"] = f'"{if_none_match}"'
    try:
        with translated(storage.s3_endpoint or "", bucket=bucket, what="media stream"):
            try:
                response = storage.get_client().get_object(**params)
            except ClientError as exc:
                if not if_none_match or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 304:
                    raise
                return _NotModified(), None, {"ETag": f'"{if_none_match}"', "StatusCode": 304}
    except StorageError as exc:
        logger.warning("CORTX storage %s: cannot stream %s: %s", storage.pk, uri, exc)
        return None, None, {}
    metadata = {
        "ETag": response.get("ETag"),
        "ContentLength": response.get("ContentLength"),
        "ContentRange": response.get("ContentRange"),
        "LastModified": response.get("LastModified"),
        "StatusCode": response["ResponseMetadata"]["HTTPStatusCode"],
    }
    return response["Body"], response.get("ContentType"), metadata
