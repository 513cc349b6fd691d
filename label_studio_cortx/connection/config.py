"""The one botocore configuration every CORTX client is built with: server side, pull side and dev servers.

CORTX v1 rejects the flexible-checksum headers and trailer uploads that botocore >= 1.36 sends by
default, and only path-style addressing works without per-bucket DNS. Imports botocore only (the pull
side uses it without Django).
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.config import Config

# The signing region of stores that have no regions (CORTX, Ceph RGW, SeaweedFS, MinIO all accept it).
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class ClientLimits:
    """How long and how often a client tries, and how many connections it keeps."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    max_pool_connections: int = 32


DEFAULT_LIMITS = ClientLimits()


def botocore_config(limits: ClientLimits = DEFAULT_LIMITS, *, path_style: bool = True) -> Config:
    """SigV4, path-style (or virtual-host) addressing, checksums only when required, bounded retries."""
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=limits.connect_timeout,
        read_timeout=limits.read_timeout,
        retries={"mode": "standard", "max_attempts": limits.max_attempts},
        max_pool_connections=limits.max_pool_connections,
        tcp_keepalive=True,
    )
