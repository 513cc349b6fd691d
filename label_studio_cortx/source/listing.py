"""Listing a source bucket: ListObjects parameters, pages (with the V1 fallback), filters, read-ahead."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator

from botocore.exceptions import ClientError

from ..connection.errors import StorageConnectionError, translated
from . import patterns

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


def iter_object_pages(storage) -> Iterator[list[dict]]:
    """Listing pages of a source storage, with folders and keys outside the regex filter removed."""
    try:
        wanted = patterns.matcher(storage.regex_filter)
    except patterns.PatternError as exc:
        # A storage saved before filters were checked with RE2: refuse it here rather than run it with re.
        raise StorageConnectionError(str(exc)) from None
    with translated(storage.s3_endpoint or "", bucket=storage.bucket, what="listing"):
        client = storage.get_client()
        for page in iter_pages(client, storage.bucket, list_params(storage)):
            yield [obj for obj in page if not obj["Key"].endswith("/") and wanted(obj["Key"])]


def read_ahead(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a thread up to ``depth`` items ahead: the next listing page is fetched over
    the network while the current one is written to the database."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            items.put(("error", exc))
            return
        items.put(("done", None))

    thread = threading.Thread(target=produce, name="cortx-list-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


def iter_objects(storage) -> Iterator[dict]:
    for page in iter_object_pages(storage):
        yield from page
