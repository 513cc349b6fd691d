"""Pytest plugin: session-scoped real S3 endpoints (no Django, no database).

Register with ``pytest_plugins = ["tests.endpoint_fixtures"]`` (in tests/conftest.py) or ``-p tests.endpoint_fixtures``.

- ``s3_http`` / ``s3_https``: moto's server in a subprocess with SigV4 auth enforced (HTTPS: private-CA cert,
  ``ca_path``/``ca_pem`` on the endpoint).
- ``cortx_s3`` / ``cortx_s3_https``: the same behind the CORTX-profile proxy (virtual-host, flexible checksums,
  CORS, DeleteObjects without Content-MD5 and presigned requests are refused); ``.requests`` is its request log.

Each fixture starts its own server only when first requested, so a test run pays only for what it uses. They are
shared by the whole session: use unique bucket names (``unique_bucket_name()``) and, for request-log assertions,
``endpoint.mark()`` / ``endpoint.requests_since(mark)`` rather than the whole log.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from label_studio_cortx.testing.cortx_filter import CortxEndpoint, start_cortx_endpoint
from label_studio_cortx.testing.moto_server import S3Endpoint, start_moto


@pytest.fixture(scope="session")
def s3_http() -> Iterator[S3Endpoint]:
    """Authenticating moto S3 over plain HTTP."""
    with start_moto(https=False) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_https() -> Iterator[S3Endpoint]:
    """Authenticating moto S3 over HTTPS with a private CA (``endpoint.ca_path``)."""
    with start_moto(https=True) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def cortx_s3() -> Iterator[CortxEndpoint]:
    """CORTX-profile proxy over HTTP in front of its own authenticating moto."""
    with start_cortx_endpoint(https=False) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def cortx_s3_https() -> Iterator[CortxEndpoint]:
    """CORTX-profile proxy over HTTPS (private CA) in front of its own authenticating moto (HTTP)."""
    with start_cortx_endpoint(https=True) as endpoint:
        yield endpoint
