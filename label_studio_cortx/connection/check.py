"""'Check connection': prove the endpoint, TLS, credentials, bucket and prefix are all usable.

ListObjectsV2 is the probe rather than HeadBucket because a HEAD error has no body: a wrong
secret and a missing permission would both be a bare 403, and users need to know which it is.

A target must also be writable, which no read-only S3 call can tell. Starting a multipart upload
needs the same permission as a PUT, yet never creates an object a source storage could list, and
aborting it leaves nothing behind.
"""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError
from io_storages.base_models import ImportStorage

from .errors import StorageConnectionError, translated

logger = logging.getLogger(__name__)


def check_connection(storage, client=None, list_params: dict | None = None) -> None:
    """Raise StorageConnectionError with a specific, user-safe message when the storage is unusable.

    ``list_params``: a source's ListObjects parameters (prefix, delimiter), the ones its sync lists with.
    """
    if not storage.bucket:
        raise StorageConnectionError("Enter a bucket name.")
    is_source = isinstance(storage, ImportStorage)
    params = (list_params or {}) if is_source else {}
    with translated(storage.s3_endpoint, bucket=storage.bucket, what="connection check"):
        client = client or storage.get_client()
        try:
            result = client.list_objects_v2(Bucket=storage.bucket, MaxKeys=1, **params)
        except ClientError as exc:
            # A write-only target key may not list: the bucket still exists if HEAD succeeds.
            if is_source or exc.response.get("Error", {}).get("Code") != "AccessDenied":
                raise
            client.head_bucket(Bucket=storage.bucket)
        if not is_source:
            _check_writable(client, storage)

    if is_source and storage.prefix and not result.get("Contents"):
        hint = "" if storage.recursive_scan else " (sub-folders are only scanned when 'Scan all sub-folders' is on)"
        raise StorageConnectionError(
            f"No objects found under prefix '{params.get('Prefix', '')}' in bucket '{storage.bucket}'{hint}."
        )


WRITE_PROBE_NAME = ".label-studio-cortx-write-check"


def _check_writable(client, storage) -> None:
    prefix = (storage.prefix or "").strip("/")
    key = f"{prefix}/{WRITE_PROBE_NAME}" if prefix else WRITE_PROBE_NAME
    try:
        upload = client.create_multipart_upload(Bucket=storage.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("AccessDenied", "Forbidden", "403"):
            raise
        where = f"under prefix '{prefix}/'" if prefix else "to the bucket"
        raise StorageConnectionError(
            f"These credentials can read bucket '{storage.bucket}' but may not write {where} "
            "(s3:PutObject is denied). A target storage needs write permission: use a key that may write, "
            "or ask the store's admin to grant it."
        ) from None
    try:
        client.abort_multipart_upload(Bucket=storage.bucket, Key=key, UploadId=upload["UploadId"])
    except ClientError:
        # Without s3:AbortMultipartUpload an empty upload stays pending: it holds no data, is not an
        # object, and a lifecycle rule or the store's admin clears it. Writing is what was asked.
        logger.info("CORTX target %s: could not abort the write-check upload", storage.pk)
