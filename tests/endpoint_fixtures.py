"""Pytest plugin: session-scoped real S3 endpoints (no Django, no database).

Register with ``pytest_plugins = ["tests.endpoint_fixtures"]`` (in tests/conftest.py) or ``-p tests.endpoint_fixtures``.

- ``s3_http`` / ``s3_https``: moto's server in a subprocess with SigV4 auth enforced (HTTPS: private-CA cert,
  ``ca_path``/``ca_pem`` on the endpoint).
- ``cortx_s3`` / ``cortx_s3_https``: the same behind the CORTX-profile proxy (virtual-host, flexible checksums,
  CORS, DeleteObjects without Content-MD5 and presigned requests are refused); ``.requests`` is its request log.

- ``seaweedfs_s3``: SeaweedFS (``weed mini``) with an admin and a read-only identity;
- ``ceph_rgw_s3``: Ceph RGW on a one-node RADOS cluster (memstore), RGW users and bucket policies;
- ``cortx_rgw_s3``: the CORTX-profile proxy in front of ``ceph_rgw_s3`` (the closest to CORTX v2 that runs here);
- ``store``: one :class:`StoreTarget` per id ``moto``, ``seaweedfs``, ``rgw``, ``cortx-rgw`` (parametrized).

A real server whose binaries are not installed skips its tests (run scripts/install-real-stores.sh), unless
``CORTX_REQUIRE_REAL_STORES=1`` (``make test`` sets it), which makes that a failure.

Each fixture starts its own server only when first requested, so a test run pays only for what it uses. They are
shared by the whole session: use unique bucket names (``unique_bucket_name()``) and, for request-log assertions,
``endpoint.mark()`` / ``endpoint.requests_since(mark)`` rather than the whole log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from label_studio_cortx.devservers.ceph_rgw import ceph_available, start_ceph_rgw
from label_studio_cortx.devservers.cortx_filter import CortxEndpoint, start_cortx_endpoint
from label_studio_cortx.devservers.daemons import RealS3Endpoint
from label_studio_cortx.devservers.moto_server import S3Endpoint, start_moto
from label_studio_cortx.devservers.seaweedfs import start_seaweedfs, weed_binary
from tests import compat_check


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


def _require(installed: bool, server: str) -> None:
    if installed:
        return
    message = f"{server} is not installed: run scripts/install-real-stores.sh"
    if os.environ.get("CORTX_REQUIRE_REAL_STORES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def seaweedfs_s3() -> Iterator[RealS3Endpoint]:
    """SeaweedFS's S3 gateway (``weed mini``); ``read_only_key()`` is its Read+List identity."""
    _require(weed_binary() is not None, "SeaweedFS (weed)")
    with start_seaweedfs() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def ceph_rgw_s3() -> Iterator[RealS3Endpoint]:
    """Ceph RGW on a fresh one-node cluster; ``read_only_key(bucket)`` grants an RGW user by bucket policy."""
    _require(ceph_available(), "Ceph (ceph-mon, ceph-osd, radosgw)")
    with start_ceph_rgw() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def cortx_rgw_s3(ceph_rgw_s3: RealS3Endpoint) -> Iterator[CortxEndpoint]:
    """The CORTX-profile proxy (HTTP) in front of ``ceph_rgw_s3``, which stays up after it."""
    with start_cortx_endpoint(upstream=ceph_rgw_s3) as endpoint:
        yield endpoint


@dataclass(frozen=True)
class StoreTarget:
    """One S3 server the storage suite runs against, with what it cannot do."""

    id: str
    """The test id: ``moto``, ``seaweedfs``, ``rgw`` or ``cortx-rgw``."""
    server: str
    """Human name of the server, e.g. "Ceph RGW"."""
    version: str
    """The version the server reports, e.g. "16.2.15"."""
    endpoint: S3Endpoint
    no_presign_reason: str | None = None
    """Why a browser cannot fetch a presigned URL from it (query-string authentication); None where it can."""

    @property
    def name(self) -> str:
        """Server and version, for skip reasons, e.g. "Ceph RGW 16.2.15"."""
        return f"{self.server} {self.version}".strip()

    def skip_unless_presigned(self, feature: str) -> None:
        if self.no_presign_reason:
            pytest.skip(f"{self.name}: {feature} cannot be tested: {self.no_presign_reason}")


STORE_IDS = ("moto", "seaweedfs", "rgw", "cortx-rgw")


@pytest.fixture(params=STORE_IDS)
def store(request: pytest.FixtureRequest) -> StoreTarget:
    """The storage suite's target servers: moto, SeaweedFS, Ceph RGW and the CORTX profile over Ceph RGW."""
    target = _store_target(request)
    compat_check.VERSIONS[target.id] = target.version
    return target


def _store_target(request: pytest.FixtureRequest) -> StoreTarget:
    import moto

    if request.param == "moto":
        # moto verifies signatures of Authorization headers but cannot serve presigned requests while it
        # enforces authentication (see tests/test_api.py).
        reason = "moto cannot serve query-string (presigned) GETs while it enforces SigV4"
        return StoreTarget("moto", "moto", moto.__version__, request.getfixturevalue("s3_http"), reason)
    if request.param in ("seaweedfs", "rgw"):
        endpoint = request.getfixturevalue("seaweedfs_s3" if request.param == "seaweedfs" else "ceph_rgw_s3")
        return StoreTarget(request.param, endpoint.server, endpoint.version, endpoint)
    endpoint = request.getfixturevalue("cortx_rgw_s3")
    # The CORTX profile refuses query-string auth, as cortx-s3server (v1) does.
    reason = "the CORTX profile refuses query-string (presigned) authentication, as CORTX v1 does"
    return StoreTarget("cortx-rgw", "CORTX profile over Ceph RGW", endpoint.upstream.version, endpoint, reason)
