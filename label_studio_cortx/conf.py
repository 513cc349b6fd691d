"""Plugin settings with their defaults, read from Django settings at call time.

Every knob an admin can turn lives here, so the rest of the code never guesses a default. Values are
read lazily (not at import) because tests and ``override_settings`` change them at run time.
"""

from __future__ import annotations

from django.conf import settings

DEFAULTS: dict[str, object] = {
    # Comma-separated origins (scheme://host[:port]) that may resolve to private addresses.
    "CORTX_TRUSTED_ENDPOINTS": [],
    # Path of a PEM file trusted for every CORTX connection that brings no CA bundle of its own.
    "CORTX_DEFAULT_CA_BUNDLE": "",
    # Whether a storage may switch TLS verification off (always logged as a warning).
    "CORTX_ALLOW_INSECURE_TLS": True,
    "CORTX_CONNECT_TIMEOUT": 5.0,
    "CORTX_READ_TIMEOUT": 60.0,
    "CORTX_MAX_ATTEMPTS": 3,
    "CORTX_MAX_POOL_CONNECTIONS": 32,
    "CORTX_DEFAULT_REGION": "us-east-1",
    # Pre-filled in the storage form for users.
    "CORTX_DEFAULT_ENDPOINT": "",
    "CORTX_CLIENT_CACHE_SIZE": 64,
    # Import syncs run in a background thread when no RQ worker is configured (never in the request).
    "CORTX_SYNC_IN_BACKGROUND": True,
    # How long the sync request waits for the sync to finish before answering "in progress".
    "CORTX_SYNC_WAIT_SECONDS": 5.0,
    # Save-time exports and deletes leave the request: RQ with Redis, else this process's bounded worker.
    "CORTX_EXPORT_IN_BACKGROUND": True,
    # Most save-time jobs the in-process worker holds; beyond that a save is only logged, and the next
    # target sync writes the annotation (it has no up-to-date export link).
    "CORTX_EXPORT_QUEUE_SIZE": 10000,
    # Concurrent GETs of task files (tasks mode).
    "CORTX_READ_WORKERS": 8,
    # Concurrent uploads of a target sync; stays below the client's connection pool.
    "CORTX_EXPORT_WORKERS": 8,
    # Snapshot files at least this large (bytes) are uploaded in parts of this size (multipart upload).
    "CORTX_MULTIPART_THRESHOLD": 64 * 1024 * 1024,
    # Comma-separated Fernet keys for storage secrets at rest: the first encrypts, all decrypt (rotation).
    # Empty: a key derived from Django's SECRET_KEY (a system check warns). See secret_store.py.
    "CORTX_SECRETS_KEY": "",
}


def get(name: str) -> object:
    return getattr(settings, name, DEFAULTS[name])


def trusted_endpoints() -> list[str]:
    value = get("CORTX_TRUSTED_ENDPOINTS")
    if isinstance(value, str):
        value = value.split(",")
    return [item.strip() for item in value or [] if item and item.strip()]


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
    return str(get("CORTX_DEFAULT_REGION") or "us-east-1")


def default_endpoint() -> str:
    return str(get("CORTX_DEFAULT_ENDPOINT") or "")


def client_cache_size() -> int:
    return int(get("CORTX_CLIENT_CACHE_SIZE"))


def ssrf_protection_enabled() -> bool:
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


def read_workers() -> int:
    return max(1, min(int(get("CORTX_READ_WORKERS")), max_pool_connections()))


def secrets_keys() -> list[str]:
    """The configured Fernet keys, newest (the encrypting one) first; empty when none is set."""
    value = get("CORTX_SECRETS_KEY")
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value or [] if item and str(item).strip()]


def export_in_background() -> bool:
    return bool(get("CORTX_EXPORT_IN_BACKGROUND"))


def export_queue_size() -> int:
    return max(1, int(get("CORTX_EXPORT_QUEUE_SIZE")))
