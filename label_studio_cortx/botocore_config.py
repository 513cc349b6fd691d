"""botocore settings every CORTX client needs, server side and in ``datasets`` alike (boto only).

CORTX v1 rejects flexible-checksum headers and trailer uploads that botocore >= 1.36 sends by
default, and only path-style addressing works without per-bucket DNS.
"""

from __future__ import annotations

from botocore.config import Config


def cortx_config(
    *,
    path_style: bool = True,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
    max_pool_connections: int = 10,
) -> Config:
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
    )
