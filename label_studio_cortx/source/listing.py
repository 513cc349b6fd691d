"""Listing a source bucket: ListObjects parameters, pages (with the V1 fallback, or as concurrent key ranges:
``key_ranges``), filters, read-ahead."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator

from botocore.exceptions import ClientError

from ..connection.errors import StorageConnectionError, translated
from . import key_ranges, patterns

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


def iter_pages(client, bucket: str, params: dict, page_size: int = 1000, ranges: int = 1) -> Iterator[list[dict]]:
    """Yield the object entries of each listing page in the store's order; never holds more than a bounded number
    of pages (one, or ``key_ranges.BUFFER_PAGES`` per range when ``ranges`` > 1)."""
    listed = False
    try:
        if ranges != 1:
            pages = key_ranges.iter_pages(client, bucket, params, ranges, page_size)
        else:
            paginator = client.get_paginator("list_objects_v2")
            pages = (
                page.get("Contents", [])
                for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": page_size}, **params)
            )
        for page in pages:
            listed = True
            yield page
        return
    except ClientError as exc:
        # Only a first request refused falls back: after pages were handed on, V1 would list them again.
        if listed or exc.response.get("Error", {}).get("Code") not in _V2_UNSUPPORTED:
            raise
        logger.info("ListObjectsV2 is not supported by the endpoint, falling back to ListObjects (V1)")
    paginator = client.get_paginator("list_objects")
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": page_size}, **params):
        yield page.get("Contents", [])


# Handed on in place of a page when a listing in key ranges starts again from the beginning in one pass: the pages
# before it may come again. An empty page, so a consumer that does not look for it only sees keys twice.
RELISTING: list[dict] = []


def iter_object_pages(storage, ranges: int = 1) -> Iterator[list[dict]]:
    """Listing pages of a source storage, with folders and keys outside the regex filter removed; ``ranges`` other
    than 1 lists key ranges at once (a sync's whole pass; a preview that reads one page stays one request).

    A store found listing out of UTF-8 binary order while in ranges is listed again from the beginning in one
    pass, with :data:`RELISTING` first: key ranges would skip keys there, a second pass only repeats some."""
    try:
        wanted = patterns.matcher(storage.regex_filter)
    except patterns.PatternError as exc:
        # A storage saved before filters were checked with RE2: refuse it here rather than run it with re.
        raise StorageConnectionError(str(exc)) from None
    with translated(storage.s3_endpoint or "", bucket=storage.bucket, what="listing"):
        client = storage.get_client()
        try:
            for page in iter_pages(client, storage.bucket, list_params(storage), ranges=ranges):
                yield [obj for obj in page if not obj["Key"].endswith("/") and wanted(obj["Key"])]
            return
        except key_ranges.KeyOrderError:
            logger.warning(
                "The store of CORTX storage %s lists keys out of UTF-8 binary order (folders where their names "
                "sort): bucket %s is listed again in one pass; CORTX_LIST_RANGES=1 saves the second listing",
                storage.pk,
                storage.bucket,
            )
        yield RELISTING
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
        finally:
            # A consumer that stops early stops the listing too (key ranges' threads end with it).
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
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
