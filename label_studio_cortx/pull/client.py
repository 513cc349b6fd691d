"""The pull side's boto3 client: the connection's one botocore configuration, without Django."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import boto3

from ..connection import ca_bundle as ca_bundles
from ..connection.config import (
    DEFAULT_LIMITS,
    DEFAULT_REGION,
    ClientLimits,
    acknowledge_at_once,
    botocore_config,
    botocore_session,
)
from .errors import SnapshotError


def _ca_bundle_path(ca_bundle: str | os.PathLike[str]) -> str:
    """PEM text (repaired as the storage form's, see connection.ca_bundle) is written to a private file; a path
    is checked."""
    text = os.fspath(ca_bundle)
    if "-----BEGIN" in text:
        try:
            return ca_bundles.bundle_path(ca_bundles.normalize(text))
        except ca_bundles.CABundleError as exc:
            raise SnapshotError(f"CA bundle: {exc}") from None
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        raise SnapshotError(f"CA bundle {path!r} does not exist (expected the path of a PEM file, or PEM text)")
    return path


def make_client(
    endpoint_url: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    region: str = DEFAULT_REGION,
    ca_bundle: str | os.PathLike[str] | None = None,
    verify: bool = True,
    path_style: bool = True,
    connect_timeout: float = DEFAULT_LIMITS.connect_timeout,
    read_timeout: float = DEFAULT_LIMITS.read_timeout,
    max_attempts: int = DEFAULT_LIMITS.max_attempts,
    max_pool_connections: int = DEFAULT_LIMITS.max_pool_connections,
) -> Any:
    """Create a boto3 S3 client suited to CORTX and other S3-compatible stores.

    :param endpoint_url: ``http(s)://host[:port]`` of the S3 endpoint (``None``: AWS / ``AWS_ENDPOINT_URL``)
    :param access_key: access key id; with ``secret_key`` ``None`` too, boto3's usual chain is used
        (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, profiles ...)
    :param secret_key: secret access key
    :param session_token: optional session token (temporary credentials)
    :param region: signing region; S3-compatible stores usually accept ``us-east-1``
    :param ca_bundle: CA certificate(s) to trust, as a PEM file path or as PEM text
    :param verify: ``False`` disables TLS certificate verification (insecure; testing only)
    :param path_style: path-style addressing (``endpoint/bucket/key``), what CORTX expects; ``False`` uses
        virtual-host style (``bucket.endpoint/key``)
    :param connect_timeout: seconds to wait for a connection
    :param read_timeout: seconds to wait for data on an open connection
    :param max_attempts: total attempts per request (standard retry mode)
    :param max_pool_connections: connections kept open; at least the media download's worker count

    The client signs with SigV4 and computes / validates the new flexible checksums only when an operation
    requires them: CORTX rejects the ``x-amz-checksum-*`` headers that boto3 >= 1.36 sends by default.
    """
    if endpoint_url is not None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = endpoint_url.split("@")[-1]  # never echo user:password@ if someone put it in the URL
            raise SnapshotError(f"invalid endpoint URL {shown!r}: expected http://host[:port] or https://host[:port]")
    if (access_key is None) != (secret_key is None):
        missing = "secret key" if secret_key is None else "access key"
        raise SnapshotError(
            f"incomplete credentials: the {missing} is missing "
            "(pass both --access-key and --secret-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )

    verify_arg: bool | str | None
    if not verify:
        verify_arg = False
    elif ca_bundle:
        verify_arg = _ca_bundle_path(ca_bundle)
    else:
        verify_arg = None  # botocore default: certifi, or AWS_CA_BUNDLE

    limits = ClientLimits(connect_timeout, read_timeout, max_attempts, max_pool_connections)
    config = botocore_config(limits, path_style=path_style)
    session = boto3.session.Session(botocore_session=botocore_session())
    client = session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region or DEFAULT_REGION,
        verify=verify_arg,
        config=config,
    )
    acknowledge_at_once(client)
    return client
