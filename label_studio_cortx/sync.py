"""Reading a source bucket: listing objects page by page and turning objects into task data."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from botocore.exceptions import ClientError
from django.conf import settings
from io_storages.utils import StorageObject, load_tasks_json

logger = logging.getLogger(__name__)

# Errors by which a store says it has no ListObjectsV2; V1 with markers is used instead.
_V2_UNSUPPORTED = {"NotImplemented", "InvalidArgument", "InvalidRequest", "MethodNotAllowed"}


def list_params(storage) -> dict:
    """ListObjects parameters for a source storage, the same for checking and for syncing."""
    params = {}
    if storage.prefix:
        params["Prefix"] = storage.prefix.rstrip("/") + "/"
    if not storage.recursive_scan:
        params["Delimiter"] = "/"
    return params


def iter_pages(client, bucket: str, params: dict, page_size: int = 1000) -> Iterator[list[dict]]:
    """Yield the object entries of each listing page; never holds more than one page."""
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": page_size}, **params):
            yield page.get("Contents", [])
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _V2_UNSUPPORTED:
            raise
        logger.info("ListObjectsV2 is not supported by the endpoint, falling back to ListObjects (V1)")
    paginator = client.get_paginator("list_objects")
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": page_size}, **params):
        yield page.get("Contents", [])


def iter_objects(storage) -> Iterator[dict]:
    """Objects of a source storage that pass the folder and regex filters, in listing order."""
    regex = re.compile(storage.regex_filter) if storage.regex_filter else None
    client = storage.get_client()
    try:
        for page in iter_pages(client, storage.bucket, list_params(storage)):
            for obj in page:
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                if regex and not regex.match(key):
                    continue
                yield obj
    except Exception as exc:
        raise storage.connection_error(exc) from None


def read_task_data(storage, key: str) -> list[StorageObject]:
    """Task data for one object: a link to the object (files mode) or the tasks in a JSON/JSONL file."""
    if storage.use_blob_urls:
        return [StorageObject(key=key, task_data={settings.DATA_UNDEFINED_NAME: f"s3://{storage.bucket}/{key}"})]
    try:
        body = storage.get_client().get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise storage.connection_error(exc) from None
    return list(load_tasks_json(body, key))
