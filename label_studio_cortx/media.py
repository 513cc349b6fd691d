"""Media URLs for the labeling UI: presigned links (optional; CORTX v1 has none) on the public endpoint."""

from __future__ import annotations

import base64
import mimetypes

from . import client as client_factory


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
        try:
            response = storage.get_client().get_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise storage.connection_error(exc) from None
        content_type = response.get("ContentType") or "application/octet-stream"
        return f"data:{content_type};base64," + base64.b64encode(response["Body"].read()).decode()
    params = {"Bucket": bucket, "Key": key}
    content_type, _ = mimetypes.guess_type(key)
    if content_type:
        params["ResponseContentType"] = content_type
    presigner = client_factory.get_presign_client(storage.connection_config(), storage.public_endpoint)
    return presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=int(storage.presign_ttl) * 60)
