"""The one place where boto3 clients for CORTX storages are configured and built.

Every call the storage type makes (validation, listing, reading task files, media proxying,
presigning, export, delete) goes through :func:`get_client`, so CORTX's requirements are applied
once: SigV4, path-style addressing, no flexible checksums (CORTX rejects ``x-amz-checksum-*`` and
trailer uploads), bounded timeouts with standard retries, and a per-connection trust store.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import boto3
from io_storages.s3.utils import _guard_client_connections

from .. import conf
from . import ca_bundle, endpoints
from .config import DEFAULT_LIMITS, DEFAULT_REGION, ClientLimits, botocore_config, botocore_session

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything that determines how a client talks to the store; the client cache key."""

    endpoint_url: str
    region_name: str = DEFAULT_REGION
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    force_path_style: bool = True
    ca_bundle: str = ""
    verify_tls: bool = True
    # Filled in by the factory from admin settings, so a changed setting also changes the key.
    default_ca_bundle: str = ""
    ssrf_guard: bool = True
    limits: ClientLimits = DEFAULT_LIMITS

    @classmethod
    def build(
        cls,
        endpoint_url: str,
        *,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        force_path_style: bool = True,
        ca_bundle_pem: str | None = None,
        verify_tls: bool = True,
    ) -> ConnectionConfig:
        return cls(
            endpoint_url=endpoints.normalize(endpoint_url),
            region_name=(region_name or conf.default_region()).strip(),
            access_key_id=access_key_id or None,
            secret_access_key=secret_access_key or None,
            session_token=session_token or None,
            force_path_style=bool(force_path_style),
            ca_bundle=ca_bundle.normalize(ca_bundle_pem),
            verify_tls=bool(verify_tls),
            default_ca_bundle=conf.default_ca_bundle(),
            ssrf_guard=endpoints.needs_ssrf_guard(endpoint_url),
            limits=ClientLimits(
                connect_timeout=conf.connect_timeout(),
                read_timeout=conf.read_timeout(),
                max_attempts=conf.max_attempts(),
                max_pool_connections=conf.max_pool_connections(),
            ),
        )

    @property
    def verify(self) -> bool | str:
        """botocore's ``verify``: the storage's CA bundle, the admin's default bundle, or False."""
        if not self.verify_tls:
            return False
        if self.ca_bundle:
            return ca_bundle.bundle_path(self.ca_bundle)
        if self.default_ca_bundle:
            return self.default_ca_bundle
        return True


def _create(config: ConnectionConfig, endpoint_url: str, guard: bool, path_style: bool | None = None):
    path_style = config.force_path_style if path_style is None else path_style
    if not config.verify_tls:
        if not conf.allow_insecure_tls():
            raise endpoints.EndpointError(
                "TLS verification is switched off for this storage, but the admin forbids that "
                "(CORTX_ALLOW_INSECURE_TLS=false). Provide the CA bundle instead."
            )
        logger.warning(
            "CORTX storage connection to %s does not verify TLS certificates", endpoints.display(endpoint_url)
        )
    if guard:
        # Re-checked at connection time too (below): DNS can change after the storage was saved.
        endpoints.check_ssrf(endpoint_url)
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token,
        botocore_session=botocore_session(),
    )
    client = session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=config.region_name,
        verify=config.verify,
        config=botocore_config(config.limits, path_style=path_style),
    )
    if guard:
        _guard_client_connections(client)
    # Every socket goes to this endpoint's host and port, trusted or not, whatever a URL parser made of it.
    endpoints.pin_client_connections(client, endpoint_url, virtual_hosts=not path_style)
    return client


class _ClientCache:
    """A small LRU of clients: building one costs ~100 ms, and boto3 clients are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, object] = OrderedDict()

    def get(self, key: tuple, factory):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        client = factory()
        with self._lock:
            self._items[key] = client
            self._items.move_to_end(key)
            while len(self._items) > max(1, conf.client_cache_size()):
                self._items.popitem(last=False)
        return client

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _ClientCache()


def get_client(config: ConnectionConfig):
    """The boto3 S3 client for this configuration (cached; every field is part of the key)."""
    return _cache.get(("api", config), lambda: _create(config, config.endpoint_url, config.ssrf_guard))


def get_presign_client(config: ConnectionConfig, public_endpoint: str | None = None):
    """A client whose presigned URLs name the host browsers use; it never opens a connection itself.

    Presigned URLs are always path-style: browsers cannot resolve per-bucket host names on-premises.
    """
    endpoint = endpoints.normalize(public_endpoint) if public_endpoint else config.endpoint_url
    return _cache.get(("presign", config, endpoint), lambda: _create(config, endpoint, False, path_style=True))


def clear_cache() -> None:
    _cache.clear()
