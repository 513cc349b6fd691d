"""The CORTX source storages the media paths serve from, with their clients, kept for a moment (``rows``).

Every image an annotator or an API client opens needs its storage's row (a wide one: secrets, CA bundle) and its
client (keys decrypted, configuration built), and all of a project's images come from one or two rows: reading
them once per image was a sixth of a served image. ``rows`` keeps both for ``seconds`` in each process. A save or
delete of a storage in this process is seen at once (``forget``, connected in ``signals``); one made by another
process (another gunicorn worker, an RQ worker) within ``seconds``.

Part of the Django layer: used by ``media_gateway`` (media links) and ``api`` (``/tasks/<id>/resolve/``, the links' full
path).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .connection.errors import StorageError
from .models import CortxImportStorage

Entry = tuple[Any, Any]  # (storage, its client, or None when the client cannot be built: media.serve says so)


class StorageRows:
    """Storage rows and clients by storage id and by project, each read again after ``seconds``."""

    def __init__(self, seconds: float = 2.0, size: int = 256):
        self.seconds, self.size = seconds, size
        self._by_id: dict[int, tuple[float, Entry | None]] = {}
        self._by_project: dict[int, tuple[float, list[Entry]]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by forget: a row read before a change is not kept after it

    def get(self, storage_id: int) -> Entry | None:
        """(storage, client) of a CORTX source storage, or None when there is no such storage."""

        def read() -> Entry | None:
            storage = CortxImportStorage.objects.filter(pk=storage_id).first()
            return _entry(storage) if storage is not None else None

        return self._cached(self._by_id, storage_id, read)

    def of_project(self, project_id: int) -> list[Entry]:
        """(storage, client) of each CORTX source storage of a project, by id (Label Studio's order)."""

        def read() -> list[Entry]:  # the query built on a miss only: building it is most of a hit's cost
            return [
                _entry(storage) for storage in CortxImportStorage.objects.filter(project_id=project_id).order_by("pk")
            ]

        return self._cached(self._by_project, project_id, read)

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._by_id.clear()
            self._by_project.clear()

    def _cached(self, table: dict, key: int, read: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            found, generation = table.get(key), self._generation
        if found is not None and now - found[0] < self.seconds:
            return found[1]
        value = read()
        with self._lock:
            if generation == self._generation:  # not read across a forget: kept
                if len(table) >= self.size:
                    table.clear()
                table[key] = (now, value)
        return value


def _entry(storage) -> Entry:
    try:
        return storage, storage.get_client()
    except StorageError:
        return storage, None


rows = StorageRows()
