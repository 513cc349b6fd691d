"""Task files: what one object holds - a link to itself (files mode), or the tasks of a JSON/JSONL file.

JSONL streams line by line with a bounded line length, and a JSON list item by item (ijson), so one large
file is never held as bytes (:func:`stream_task_file`); bad lines are reported by number and the good
ones kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import ijson
from django.conf import settings
from io_storages.utils import StorageObject, load_tasks_json

from ..connection.errors import MAX_REPORTED_ERRORS, CappedMessages, StorageError, translated

TASK_FILE_EXTENSIONS = (".json", ".jsonl")
# One JSONL line is one task: far below this; a longer line is reported, never held.
MAX_JSONL_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class TaskFile:
    """What one object holds: the tasks it could read, and the lines it could not (JSONL only)."""

    key: str
    objects: list[StorageObject]
    problems: CappedMessages = field(default_factory=lambda: CappedMessages(MAX_REPORTED_ERRORS, "more bad lines"))


def read_task_file(storage, key: str, client=None) -> TaskFile:
    """Task data for one object: a link to the object (files mode) or the tasks in a JSON/JSONL file.

    A JSONL file keeps its good lines: each bad line is a problem named by its line number, and only a
    file with no readable line at all fails as a whole (TaskFileError).
    """
    if storage.use_blob_urls:
        return TaskFile(key, file_tasks(storage, [key]))
    try:
        with translated(storage.s3_endpoint or "", bucket=storage.bucket, what=f"read of task file {key}"):
            client = client or storage.get_client()
            body = client.get_object(Bucket=storage.bucket, Key=key)["Body"]
            return _parse(key, body)
    except TaskFileError:
        raise
    except StorageError as exc:
        raise TaskFileError(key, str(exc)) from None


def _parse(key: str, body) -> TaskFile:
    try:
        if key.lower().endswith(".jsonl"):
            result = TaskFile(key, [])
            result.objects = list(_iter_jsonl(body, key, result.problems))
            if not result.objects and result.problems.count:
                raise TaskFileError(key, "no line is a valid task: " + "; ".join(result.problems.report()[:3]))
            return result
        return TaskFile(key, list(load_tasks_json(body.read(), key)))
    except (ValueError, UnicodeDecodeError) as exc:
        cause = exc.__cause__ or exc
        raise TaskFileError(key, f"not a valid JSON/JSONL task file ({cause})") from None


def file_tasks(storage, keys: list[str]) -> list[StorageObject]:
    """Files mode: one task per object, holding a link to it (Label Studio's ``$undefined$`` data key)."""
    name, prefix = settings.DATA_UNDEFINED_NAME, f"s3://{storage.bucket}/"
    return [StorageObject(key=key, task_data={name: prefix + key}) for key in keys]


def read_task_data(storage, key: str, client=None) -> list[StorageObject]:
    """The tasks one object holds (what Label Studio's ``get_data`` returns); bad JSONL lines are left out."""
    return read_task_file(storage, key, client).objects


def stream_task_file(body, key: str, problems: CappedMessages) -> Iterator[StorageObject]:
    """The tasks of a task file as its body streams: JSONL line by line, a JSON list item by item.

    Bad JSONL lines are added to ``problems``; a JSON file that is not valid raises TaskFileError once the
    parser meets the error (the items before it have been yielded).
    """
    if key.lower().endswith(".jsonl"):
        yield from _iter_jsonl(body, key, problems)
        return
    head = b""
    while not head.strip():
        chunk = body.read(64 * 1024)
        if not chunk:
            raise TaskFileError(key, "not a valid JSON/JSONL task file (the file is empty)")
        head += chunk
    stream = _Prefixed(head, body)
    if head.lstrip()[:1] != b"[":
        # One task object: small by nature, and read as Label Studio reads it.
        try:
            yield from load_tasks_json(stream.read(), key)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TaskFileError(key, f"not a valid JSON/JSONL task file ({exc.__cause__ or exc})") from None
        return
    try:
        for index, record in enumerate(ijson.items(stream, "item", use_float=True)):
            yield StorageObject(key=key, task_data=record, row_index=index)
    except ijson.JSONError as exc:
        raise TaskFileError(key, f"not a valid JSON task file ({str(exc)[:100]})") from None


class _Prefixed:
    """A body whose first bytes were already read to see what kind of file it is."""

    def __init__(self, head: bytes, body) -> None:
        self._head = head
        self._body = body

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._body.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._body.read() if size is None or size < 0 else self._body.read(size)


def _iter_jsonl(body, key: str, problems: CappedMessages) -> Iterator[StorageObject]:
    """Stream a JSONL file line by line, so a large file is never held whole; bad lines become problems.

    ``row_index`` is the line's index in the file, so a line fixed later keeps its place and a re-sync
    can tell which rows already have tasks.
    """
    for index, line in enumerate(_bounded_lines(body, MAX_JSONL_LINE_BYTES)):
        if line is None:
            problems.add(f"line {index + 1} is longer than {MAX_JSONL_LINE_BYTES // (1024 * 1024)} MiB")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.add(f"line {index + 1} is not valid JSON ({str(exc)[:100]})")
            continue
        if not isinstance(record, dict):
            problems.add(f"line {index + 1} is not a JSON object")
            continue
        yield StorageObject(key=key, task_data=record, row_index=index)


def _bounded_lines(body, limit: int, chunk_size: int = 1024 * 1024) -> Iterator[bytes | None]:
    """The lines of a streamed body; ``None`` stands for a line longer than ``limit``, which is skipped
    without being held (a file with no line breaks must not be read into memory whole)."""
    pending = b""
    skipping = False
    for chunk in body.iter_chunks(chunk_size):
        data = pending + chunk if pending else chunk
        start = 0
        # Lines are cut by offset: slicing the rest of the buffer per line would copy it once per line.
        while (end := data.find(b"\n", start)) >= 0:
            if skipping:
                skipping = False
                yield None
            else:
                yield data[start:end]
            start = end + 1
        pending = data[start:]
        if not skipping and len(pending) > limit:
            skipping = True
        if skipping:
            pending = b""
    if skipping:
        yield None
    elif pending:
        yield pending


class TaskFileError(StorageError):
    """A task file that could not be read or parsed; the sync reports it by key and goes on."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def split_task(record: dict) -> tuple[dict, dict, bool]:
    """(data, meta, needs_full_import): tasks with annotations or predictions take Label Studio's path."""
    rich = bool(record.get("annotations") or record.get("predictions"))
    if isinstance(record.get("data"), dict):
        return record["data"], record.get("meta") or {}, rich
    return record, {}, rich
