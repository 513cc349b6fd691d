"""The plugin's settings table: every CORTX setting's name, default, type and meaning, defined once.

``settings.py`` fills the Django settings from the environment through :func:`from_env`; code reads a
value with :func:`get` (or the typed helpers below, which add the few rules a value must obey).
Values are read at call time, not at import, because tests and ``override_settings`` change them while
the server runs. Imports only django.conf (the settings module loads it before Django is configured)
and the Django-free client defaults of ``connection.config``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from .connection.config import DEFAULT_LIMITS, DEFAULT_REGION


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on", "y", "t")


def _list(text: str | list | tuple) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text
    return [str(item).strip() for item in items or [] if item and str(item).strip()]


def _ranges(value: str | int) -> str | int:
    """``auto`` (any case) or a number: from the environment, or as a Django setting."""
    return "auto" if isinstance(value, str) and value.strip().lower() == "auto" else int(value)


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    parse: Callable[[str], object]
    meaning: str
    secret: bool = False


# One entry per setting, laid out as a table (name, default, parser, meaning): the formatter leaves it so.
# fmt: off
TABLE: tuple[Setting, ...] = (
    # --- the connection ---------------------------------------------------------------------------------------
    Setting("CORTX_TRUSTED_ENDPOINTS", [], _list, "Comma-separated origins (scheme://host[:port]) that may "
            "resolve to private addresses while Label Studio's SSRF protection is on."),
    Setting("CORTX_DEFAULT_CA_BUNDLE", "", str, "Path of a PEM file trusted for every CORTX connection that "
            "brings no CA bundle of its own."),
    Setting("CORTX_ALLOW_INSECURE_TLS", True, _bool, "Whether a storage may switch TLS verification off "
            "(always logged as a warning)."),
    Setting("CORTX_CONNECT_TIMEOUT", DEFAULT_LIMITS.connect_timeout, float, "Seconds to open a connection."),
    Setting("CORTX_READ_TIMEOUT", DEFAULT_LIMITS.read_timeout, float, "Seconds to wait for data on a connection."),
    Setting("CORTX_MAX_ATTEMPTS", DEFAULT_LIMITS.max_attempts, int, "Attempts per request (standard retries)."),
    Setting("CORTX_MAX_POOL_CONNECTIONS", DEFAULT_LIMITS.max_pool_connections, int, "Connections per client: "
            "bounds the concurrent reads and uploads of one sync."),
    Setting("CORTX_DEFAULT_REGION", DEFAULT_REGION, str, "Signing region of storages that leave it empty."),
    Setting("CORTX_DEFAULT_ENDPOINT", "", str, "Endpoint pre-filled in the storage form."),
    Setting("CORTX_CLIENT_CACHE_SIZE", 64, int, "boto3 clients kept per process (one per distinct connection)."),
    Setting("CORTX_SECRETS_KEY", "", str, "Comma-separated Fernet keys for storage secrets at rest: the first "
            "encrypts, all decrypt (rotation). Empty: derived from SECRET_KEY (a system check warns).", True),
    # --- the source sync ------------------------------------------------------------------------------------
    Setting("CORTX_SYNC_IN_BACKGROUND", True, _bool, "Without RQ, run syncs in a thread of the server "
            "(never in the request)."),
    Setting("CORTX_SYNC_WAIT_SECONDS", 5.0, float, "How long a Sync request waits for the sync before it "
            "answers 'in progress'."),
    Setting("CORTX_LIST_RANGES", "auto", _ranges, "Key ranges a source sync's listing walks at once "
            "(ListObjectsV2 with StartAfter), pages still in key order: 'auto' (two where the store kept the client "
            "waiting three times as long as it worked on the first page, else one) or a number from 1 to 16."),
    Setting("CORTX_READ_WORKERS", 8, int, "Concurrent GETs of task files (tasks mode)."),
    Setting("CORTX_TASK_FILE_STREAM_BYTES", 8 * 1024 * 1024, int, "Task files at least this large (bytes) are "
            "streamed, their tasks created in chunks of 1,000 rows, instead of read whole."),
    # --- automatic sync: schedules and bucket notifications ---------------------------------------------------
    Setting("CORTX_MIN_SYNC_INTERVAL", 5, int, "Shortest sync interval (minutes) a storage may set; a shorter "
            "stored one runs at this interval."),
    Setting("CORTX_SCHEDULER", True, _bool, "Run scheduled syncs: without Redis in one thread of each web "
            "process, with Redis as a job that RQ's scheduler repeats (`rqworker --with-scheduler`)."),
    Setting("CORTX_SCHEDULER_TICK_SECONDS", 30.0, float, "How often the scheduler looks for due syncs and "
            "pending bucket events."),
    Setting("CORTX_EVENTS_MAX_BODY_BYTES", 1024 * 1024, int, "Largest bucket-notification request body "
            "accepted (bytes); larger ones get 413."),
    Setting("CORTX_EVENTS_MAX_RECORDS", 1000, int, "Most event records in one notification request."),
    Setting("CORTX_EVENTS_BATCH_SIZE", 500, int, "Pending bucket events applied per batch."),
    Setting("CORTX_EVENTS_MAX_PENDING", 100_000, int, "Most bucket events one storage may have waiting (say while "
            "its store is down); beyond that a notification gets 503 with Retry-After and nothing is stored."),
    # --- media for the labeling UI -----------------------------------------------------------------------
    Setting("CORTX_MEDIA_LINKS", True, _bool, "Proxied media (presign off) reaches a browser as signed links "
            "bound to its session, served before Label Studio's middleware; off: every image goes through "
            "/tasks/<id>/resolve/ and the whole middleware stack."),
    Setting("CORTX_MEDIA_LINK_SECONDS", 300, int, "A media link is served on its session alone for this long "
            "to twice this long after it is made; later, the request is fully authenticated and checked."),
    # --- the target side ------------------------------------------------------------------------------------
    Setting("CORTX_EXPORT_IN_BACKGROUND", True, _bool, "Save-time exports and deletes leave the request: RQ "
            "with Redis, else this process's bounded worker."),
    Setting("CORTX_EXPORT_QUEUE_SIZE", 10000, int, "Most save-time jobs the in-process worker holds; beyond "
            "that a save is logged and the next target sync writes the annotation."),
    Setting("CORTX_EXPORT_WORKERS", 8, int, "Concurrent uploads of a target sync (capped by the pool)."),
    Setting("CORTX_MULTIPART_THRESHOLD", 64 * 1024 * 1024, int, "Snapshot files at least this large (bytes) "
            "are uploaded in parts of this size."),
    # --- workers --------------------------------------------------------------------------------------------
    Setting("CORTX_REDIS_URL", "", str, "Redis URL: syncs and save-time exports go to Label Studio's RQ "
            "queues, run by `rqworker low default`.", True),
    Setting("CORTX_DB_CONN_MAX_AGE", 0, int, "Seconds a server thread keeps its database connection between "
            "requests (Django's CONN_MAX_AGE, with health checks); 0: a new one per request, as Label Studio "
            "does. The production server sets 60."),
    Setting("CORTX_DB_PREPARED_STATEMENTS", False, _bool, "PostgreSQL: the statements every proxied image "
            "repeats are prepared on the connection (Django keeps prepared statements off for connection poolers in "
            "transaction mode). The production server turns it on."),
)
# fmt: on

_BY_NAME = {setting.name: setting for setting in TABLE}


def from_env(environ: dict[str, str] | None = None) -> dict[str, object]:
    """Every setting's value from the environment (``CORTX_...`` variables), else its default."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in TABLE:
        raw = environ.get(setting.name)
        values[setting.name] = setting.default if raw is None or raw == "" else setting.parse(raw)
    return values


def get(name: str) -> object:
    return getattr(settings, name, _BY_NAME[name].default)


def trusted_endpoints() -> list[str]:
    return _list(get("CORTX_TRUSTED_ENDPOINTS"))


def default_ca_bundle() -> str:
    return str(get("CORTX_DEFAULT_CA_BUNDLE") or "")


def allow_insecure_tls() -> bool:
    return bool(get("CORTX_ALLOW_INSECURE_TLS"))


def connect_timeout() -> float:
    return float(get("CORTX_CONNECT_TIMEOUT"))


def read_timeout() -> float:
    return float(get("CORTX_READ_TIMEOUT"))


def max_attempts() -> int:
    return int(get("CORTX_MAX_ATTEMPTS"))


def max_pool_connections() -> int:
    return int(get("CORTX_MAX_POOL_CONNECTIONS"))


def default_region() -> str:
    return str(get("CORTX_DEFAULT_REGION") or DEFAULT_REGION)


def default_endpoint() -> str:
    return str(get("CORTX_DEFAULT_ENDPOINT") or "")


def client_cache_size() -> int:
    return int(get("CORTX_CLIENT_CACHE_SIZE"))


def ssrf_protection_enabled() -> bool:
    # Label Studio's own setting, not in the table.
    return bool(getattr(settings, "SSRF_PROTECTION_ENABLED", True))


def export_workers() -> int:
    return max(1, min(int(get("CORTX_EXPORT_WORKERS")), max_pool_connections()))


def multipart_threshold() -> int:
    # S3 refuses parts below 5 MiB (except the last one), so a smaller setting would fail on real stores.
    return max(5 * 1024 * 1024, int(get("CORTX_MULTIPART_THRESHOLD")))


def sync_in_background() -> bool:
    return bool(get("CORTX_SYNC_IN_BACKGROUND"))


def sync_wait_seconds() -> float:
    return float(get("CORTX_SYNC_WAIT_SECONDS"))


def task_file_stream_bytes() -> int:
    return max(0, int(get("CORTX_TASK_FILE_STREAM_BYTES")))


def list_ranges() -> int:
    """0 for "auto" (``source.key_ranges.AUTO``), else from 1 to 16: each range holds a pooled connection and up to
    six pages while it waits for the reader."""
    value = _ranges(get("CORTX_LIST_RANGES"))
    return 0 if value == "auto" else max(1, min(value, 16))


def read_workers() -> int:
    return max(1, min(int(get("CORTX_READ_WORKERS")), max_pool_connections()))


def secrets_keys() -> list[str]:
    """The configured Fernet keys, newest (the encrypting one) first; empty when none is set."""
    return _list(get("CORTX_SECRETS_KEY"))


def export_in_background() -> bool:
    return bool(get("CORTX_EXPORT_IN_BACKGROUND"))


def export_queue_size() -> int:
    return max(1, int(get("CORTX_EXPORT_QUEUE_SIZE")))


def min_sync_interval() -> int:
    return max(1, int(get("CORTX_MIN_SYNC_INTERVAL")))


def scheduler_enabled() -> bool:
    return bool(get("CORTX_SCHEDULER"))


def scheduler_tick_seconds() -> float:
    return max(0.05, float(get("CORTX_SCHEDULER_TICK_SECONDS")))


def events_max_body_bytes() -> int:
    return max(1024, int(get("CORTX_EVENTS_MAX_BODY_BYTES")))


def events_max_records() -> int:
    return max(1, int(get("CORTX_EVENTS_MAX_RECORDS")))


def events_batch_size() -> int:
    return max(1, int(get("CORTX_EVENTS_BATCH_SIZE")))


def events_max_pending() -> int:
    return max(1, int(get("CORTX_EVENTS_MAX_PENDING")))


def media_links() -> bool:
    return bool(get("CORTX_MEDIA_LINKS"))


def media_link_seconds() -> int:
    return max(10, int(get("CORTX_MEDIA_LINK_SECONDS")))
