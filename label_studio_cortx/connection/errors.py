"""The plugin's domain errors, and turning store failures into messages a person can act on.

Label Studio hides errors from unknown S3 domains behind "Debugging info is not available"; CORTX
stores are always on unknown domains, so each failure class gets its own explanation instead.
Code that talks to a store wraps the call in :func:`translated`: the user sees :func:`describe`'s
sentence, the log gets the original exception once, with its traceback. Only the API layer turns
a :class:`StorageError` into an HTTP answer. Imports botocore and this folder's endpoints/CA bundles.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)
from botocore.parsers import ResponseParserError

from .ca_bundle import CABundleError
from .endpoints import EndpointError, EndpointPinError, display

# What an S3 error code looks like; anything else in a reply is not echoed to the user.
_S3_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")
MAX_STORE_MESSAGE = 200
# Most problems one sync or export reports (the rest are counted, not listed).
MAX_REPORTED_ERRORS = 50

logger = logging.getLogger(__name__)


@dataclass
class CappedMessages:
    """Messages for a status or a report: all are counted, the first ``cap`` are kept, the rest summed up."""

    cap: int
    more: str = "more"
    kept: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.kept) < self.cap:
            self.kept.append(message)

    def report(self) -> list[str]:
        hidden = self.count - len(self.kept)
        return self.kept + ([f"... and {hidden} {self.more}"] if hidden else [])


class StorageError(Exception):
    """Something a user asked of a storage cannot be done; ``str()`` is safe to show them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class StorageConnectionError(StorageError):
    """Talking to the store failed (endpoint, TLS, credentials, bucket, permissions)."""


@contextmanager
def translated(endpoint: str | None, *, bucket: str | None = None, what: str = "store request") -> Iterator[None]:
    """Run a store call: any failure leaves as a :class:`StorageConnectionError` with :func:`describe`'s message.

    The original exception is logged once (:func:`storage_error`) and not chained to the raised error: Label
    Studio shows a failed sync's traceback to users, and a foreign reply must not reach them.
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise storage_error(exc, endpoint, bucket=bucket, what=what) from None


def storage_error(
    exc: BaseException, endpoint: str | None, *, bucket: str | None = None, what: str = "store request"
) -> StorageError:
    """The user-facing error for a store failure; logs the original once, with its traceback."""
    if isinstance(exc, StorageError):
        return exc
    error = StorageConnectionError(describe(exc, endpoint=endpoint or "", bucket=bucket))
    logger.info("CORTX %s to %s failed: %s", what, display(endpoint or ""), error, exc_info=exc)
    return error


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the errors botocore wraps in ``args`` / ``kwargs['error']``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        kwargs = getattr(current, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        for inner in (wrapped, *getattr(current, "args", ())):
            if isinstance(inner, BaseException) and id(inner) not in seen:
                seen.add(id(inner))
                yield inner
        current = current.__cause__ or current.__context__


def _chain_text(exc: BaseException) -> str:
    return " | ".join(f"{type(item).__name__}: {item}" for item in chain(exc))


def describe(exc: BaseException, *, endpoint: str, bucket: str | None = None) -> str:
    """One human sentence (or two) for a failure talking to ``endpoint``."""
    where = f"bucket '{bucket}'" if bucket else "the store"
    endpoint = display(endpoint)
    if isinstance(exc, StorageError):
        return str(exc)
    pinned = first(exc, EndpointPinError)
    if pinned is not None:
        return str(pinned)
    if isinstance(exc, (CABundleError, EndpointError)):
        return str(exc)
    if first(exc, ResponseParserError) is not None:
        # botocore's parser error quotes the reply body: never shown, it may be another service's page.
        return (
            f"{endpoint} answered with something that is not an S3 response: check that the endpoint URL "
            "points at the S3 service (host and port)."
        )
    # boto3's transfer errors (S3UploadFailedError) wrap the ClientError that says what went wrong.
    client_error = first(exc, ClientError)
    if client_error is not None:
        return _describe_client_error(client_error, endpoint=endpoint, where=where, bucket=bucket)
    if isinstance(exc, NoCredentialsError):
        return "No access key was given: enter the access key ID and secret access key of an S3 user."
    if isinstance(exc, ParamValidationError):
        return f"The request to {endpoint} was refused by the client: {exc.kwargs.get('report', exc)}"

    text = _chain_text(exc)
    lowered = text.lower()
    if isinstance(exc, SSLError) or "ssl" in lowered or "certificate" in lowered:
        if (
            "certificate verify failed" in lowered
            or "self-signed" in lowered
            or "unable to get local issuer" in lowered
        ):
            if "hostname mismatch" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
                return (
                    f"The TLS certificate of {endpoint} does not name this host: connect with a host name "
                    "the certificate lists, or reissue the certificate."
                )
            return (
                f"The TLS certificate of {endpoint} is not trusted: paste the CA certificate (PEM) that signed "
                "it into 'CA bundle', or ask your admin to set CORTX_DEFAULT_CA_BUNDLE."
            )
        if "wrong version number" in lowered or "record layer failure" in lowered or "unknown protocol" in lowered:
            return f"TLS handshake with {endpoint} failed: the endpoint may speak plain HTTP; try http:// instead."
        if "no such file" in lowered or "could not find a suitable tls ca certificate bundle" in lowered:
            return "The CA bundle file configured by the admin (CORTX_DEFAULT_CA_BUNDLE) cannot be read."
        return f"TLS connection to {endpoint} failed: {_short(exc)}"
    if isinstance(exc, ConnectTimeoutError) or "connecttimeout" in lowered:
        return f"Connecting to {endpoint} timed out: check the host, port and firewall."
    if isinstance(exc, ReadTimeoutError) or "read timed out" in lowered:
        return f"{endpoint} accepted the connection but did not answer in time: the service may be overloaded."
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "temporary failure in name resolution" in lowered
        or "nameresolutionerror" in lowered
        or "failed to resolve" in lowered
        or isinstance(first(exc, socket.gaierror), socket.gaierror)
    ):
        return f"The host of endpoint {endpoint} cannot be resolved: check the host name in the endpoint URL."
    if "connection refused" in lowered or "errno 111" in lowered:
        return f"Connection to {endpoint} was refused: check the port and that the S3 service is running."
    if "timed out" in lowered:
        return f"Connecting to {endpoint} timed out: check the host, port and firewall."
    if isinstance(exc, EndpointConnectionError) or "connection" in lowered:
        return f"Could not connect to {endpoint}: {_short(exc)}"
    if isinstance(exc, BotoCoreError):
        return f"Request to {endpoint} failed: {_short(exc)}"
    return f"Request to {endpoint} failed: {_short(exc)}"


def _describe_client_error(exc: ClientError, *, endpoint: str, where: str, bucket: str | None) -> str:
    error = exc.response.get("Error", {}) or {}
    code = str(error.get("Code") or "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "SignatureDoesNotMatch":
        return (
            "The secret access key is wrong for this access key ID (the endpoint rejected the request "
            "signature). Re-enter the secret access key."
        )
    if code in ("InvalidAccessKeyId", "InvalidClientTokenId", "AuthorizationHeaderMalformed"):
        return "The access key ID is not known to the endpoint. Check the access key ID."
    if code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
        return "The session token is expired or invalid. Enter a fresh session token or leave it empty."
    if code in ("NoSuchBucket",) or (status == 404 and code in ("404", "NotFound", "")):
        return f"Bucket '{bucket}' does not exist at {endpoint}. Check the bucket name."
    if code in ("AccessDenied", "AllAccessDisabled", "Forbidden", "403") or status == 403:
        return (
            f"Access to {where} was denied with these credentials: the key is valid but lacks permission "
            "(it needs at least list and read; write and delete for a target storage)."
        )
    if code == "PermanentRedirect" or status == 301:
        return f"{endpoint} redirected the request: set the right region, or switch on path-style addressing."
    if code in ("NotImplemented", "MethodNotAllowed"):
        return f"{endpoint} does not support this request ({code}): {store_message(error.get('Message'))}".strip()
    if not _S3_CODE.fullmatch(code) or code.isdigit():
        return (
            f"{endpoint} answered HTTP {status} without an S3 error: check that the endpoint URL points at the "
            "S3 service (host and port)."
        )
    return f"{endpoint} answered {status} {code}: {store_message(error.get('Message'))}".rstrip(": ")


def store_message(message: object) -> str:
    """An S3 error message as it may be shown: printable characters only, and short."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(message or ""))
    return text if len(text) <= MAX_STORE_MESSAGE else text[: MAX_STORE_MESSAGE - 3] + "..."


def first(exc: BaseException, kind: type):
    """The first exception of ``kind`` in the chain."""
    return next((item for item in chain(exc) if isinstance(item, kind)), None)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."
