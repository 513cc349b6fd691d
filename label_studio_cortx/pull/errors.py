"""The pull side's errors: what a training job or the ``pull`` command tells its user, with CLI hints.

Its own translation (not ``connection.errors``): the pull runs without Django, and its advice names the
command's options (``--ca-bundle``, ``--region``) rather than the storage form's fields.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)

from .manifest import normalize_prefix


class SnapshotError(Exception):
    """A snapshot cannot be listed, read, downloaded, verified, unpacked or loaded. The message is user-facing."""


class ChecksumMismatch(SnapshotError):
    """A downloaded object does not match the size / SHA-256 recorded in the snapshot manifest."""

    def __init__(
        self,
        bucket: str,
        key: str,
        expected_sha256: str,
        actual_sha256: str,
        expected_size: int,
        actual_size: int,
        endpoint: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        self.expected_size = expected_size
        self.actual_size = actual_size
        at = f" at {endpoint}" if endpoint else ""
        super().__init__(
            f"checksum mismatch for s3://{bucket}/{key}{at}: expected sha256 {expected_sha256} "
            f"({expected_size} bytes), got sha256 {actual_sha256} ({actual_size} bytes). "
            "The object is corrupt or was overwritten after the snapshot was written; "
            "re-run the snapshot and pull again."
        )


def endpoint_of(client: Any) -> str:
    """The endpoint a client talks to, for messages."""
    return str(getattr(client.meta, "endpoint_url", "") or "the default AWS endpoint")


def error_code(exc: ClientError) -> tuple[str, int | None, str]:
    """(S3 error code, HTTP status, the store's message) of a ClientError."""
    error = exc.response.get("Error", {}) or {}
    status = (exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
    code = str(error.get("Code") or status or "Unknown")
    return code, status, str(error.get("Message") or "")


_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_AUTH_HINTS = {
    "InvalidAccessKeyId": "the access key id is not known to this endpoint",
    "SignatureDoesNotMatch": "the secret key is wrong (or the region / addressing style does not match the endpoint)",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is invalid",
    "TokenRefreshRequired": "the session token has expired",
    "RequestTimeTooSkewed": "the clock of this machine differs too much from the endpoint's clock",
    "AccessDenied": "the credentials are not allowed to read this bucket/prefix (check the bucket policy)",
    "AllAccessDisabled": "all access to this bucket has been disabled",
    "AccountProblem": "the account has a problem",
    "403": "the credentials are not allowed to read this bucket/prefix (check the bucket policy)",
    "Forbidden": "the credentials are not allowed to read this bucket/prefix (check the bucket policy)",
}


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc)[0] in _NOT_FOUND_CODES


def s3_error(
    exc: BaseException, client: Any, bucket: str, key: str | None = None, prefix: str | None = None
) -> SnapshotError:
    """Translate a boto3/botocore exception into a :class:`SnapshotError` naming bucket/prefix/endpoint.

    Messages are built from our own text plus the S3 error code/message; credentials never appear in them.
    """
    endpoint = endpoint_of(client)
    if key:
        where = f"s3://{bucket}/{key}"
    elif prefix is not None:
        where = f"s3://{bucket}/{normalize_prefix(prefix)}"
    else:
        where = f"bucket {bucket!r}"
    if isinstance(exc, ClientError):
        code, status, message = error_code(exc)
        if code == "NoSuchBucket":
            return SnapshotError(f"bucket {bucket!r} does not exist at {endpoint} (check --bucket and --endpoint)")
        if code in _AUTH_HINTS:
            return SnapshotError(f"access denied ({code}) to {where} at {endpoint}: {_AUTH_HINTS[code]}")
        if code in _NOT_FOUND_CODES:
            return SnapshotError(f"{where} does not exist at {endpoint}")
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
            return SnapshotError(
                f"{where} at {endpoint} is answered with {code}: the bucket lives in another region or needs "
                "another addressing style; try --region or --virtual-host-style"
            )
        detail = f": {message}" if message else ""
        return SnapshotError(f"S3 error {code} (HTTP {status}) for {where} at {endpoint}{detail}")
    if isinstance(exc, SSLError):
        reason = str(exc.kwargs.get("error", "")) if hasattr(exc, "kwargs") else ""
        reason = f" ({reason})" if reason else ""
        return SnapshotError(
            f"TLS connection to {endpoint} failed, its certificate is not trusted{reason}: pass --ca-bundle "
            "(ca_bundle=) with the CA certificate that signed the endpoint's certificate, or --no-verify-tls "
            f"(verify=False) to skip verification (insecure); while reading {where}"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return SnapshotError(f"cannot connect to endpoint {endpoint} (check --endpoint and the network): {exc}")
    if isinstance(exc, ReadTimeoutError):
        return SnapshotError(f"endpoint {endpoint} timed out while reading {where}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SnapshotError(
            f"no usable S3 credentials for {endpoint}: pass --access-key and --secret-key "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return SnapshotError(f"S3 request for {where} at {endpoint} failed: {exc}")


STREAM_ERRORS = (
    ReadTimeoutError,
    ResponseStreamingError,
    IncompleteReadError,
    ConnectionClosedError,
    EndpointConnectionError,
)
