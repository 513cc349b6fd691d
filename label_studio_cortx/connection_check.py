"""'Check connection': prove the endpoint, TLS, credentials, bucket and prefix are all usable.

ListObjectsV2 is the probe rather than HeadBucket because a HEAD error has no body: a wrong
secret and a missing permission would both be a bare 403, and users need to know which it is.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from io_storages.base_models import ImportStorage

from .errors import StorageConnectionError
from .sync import list_params


def check_connection(storage, client=None) -> None:
    """Raise StorageConnectionError with a specific, user-safe message when the storage is unusable."""
    if not storage.bucket:
        raise StorageConnectionError("Enter a bucket name.")
    is_source = isinstance(storage, ImportStorage)
    try:
        client = client or storage.get_client()
        params = list_params(storage) if is_source else {}
        try:
            result = client.list_objects_v2(Bucket=storage.bucket, MaxKeys=1, **params)
        except ClientError as exc:
            # A write-only target key may not list: the bucket still exists if HEAD succeeds.
            if is_source or exc.response.get("Error", {}).get("Code") != "AccessDenied":
                raise
            client.head_bucket(Bucket=storage.bucket)
            return
    except StorageConnectionError:
        raise
    except Exception as exc:
        raise storage.connection_error(exc) from None

    if is_source and storage.prefix and not result.get("Contents"):
        hint = "" if storage.recursive_scan else " (sub-folders are only scanned when 'Scan all sub-folders' is on)"
        raise StorageConnectionError(
            f"No objects found under prefix '{params.get('Prefix', '')}' in bucket '{storage.bucket}'{hint}."
        )
