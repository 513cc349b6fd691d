"""SigV4 headers for the plugin's two direct requests: the media proxy's GET and the export's PUT (``client``).

botocore's signer is general: every request goes through two events, a new ``S3SigV4Auth``, the headers copied
through ``email.message`` twice, the URL split three times and the signing key derived again with four HMACs. For a
512 KiB image that was 90 µs of CPU and an eighth of the web process's Python time (docs/performance.md, "Media
proxy: where the time goes"). The direct requests are always the same shape - a path-style URL without a query
string, a few headers, the whole body in memory - so their canonical request is a fixed format, and the signing key
changes only with the day: it is derived once per secret, day, region and service.

``headers`` gives the headers botocore's ``RequestSigner.sign`` would add for such a request, byte for byte
(tests/test_signing.py compares the two over endpoints, keys, headers, bodies and credentials), or None where it
does not apply (the client signs with another signature version, or has no credentials), and the caller keeps the
client's own signer. Credentials are read from the client's signer for every request, so rotated or refreshed
credentials apply as they would in botocore.

Imports the standard library and botocore only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from urllib.parse import urlsplit

from botocore.auth import EMPTY_SHA256_HASH, SIGNED_HEADERS_BLACKLIST, SIGV4_TIMESTAMP, _host_from_url

_UNSIGNED = frozenset(SIGNED_HEADERS_BLACKLIST)
_ADDED = frozenset({"authorization", "date", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"})


def headers(
    client, method: str, url: str, request_headers: dict[str, str], body: bytes = b"", now: float | None = None
) -> dict[str, str] | None:
    """The headers to add to ``request_headers`` so that ``method`` of ``url`` (percent-encoded, without a query
    string) is signed as ``client`` would sign it; None where the client's own signer must sign.

    ``now``: seconds since the epoch (the tests' fixed clock); the current time by default."""
    signer = client._request_signer
    if signer._signature_version != "s3v4" or signer._credentials is None:
        return None
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None
    if any(name.lower() in _ADDED for name in request_headers):
        return None  # botocore replaces these: the caller never sets them, and it is not guessed here
    credentials = signer._credentials.get_frozen_credentials()
    timestamp = time.strftime(SIGV4_TIMESTAMP, time.gmtime(time.time() if now is None else now))
    added = {"X-Amz-Date": timestamp}
    if credentials.token:
        added["X-Amz-Security-Token"] = credentials.token
    payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
    added["X-Amz-Content-SHA256"] = payload
    signed = {"host": _host(parts.scheme, parts.netloc)}
    for name, value in (*request_headers.items(), *added.items()):
        name = name.lower()
        if name not in _UNSIGNED:
            signed[name] = " ".join(value.split())
    names = sorted(signed)
    signed_names = ";".join(names)
    canonical = "\n".join(
        [method.upper(), parts.path, "", *(f"{name}:{signed[name]}" for name in names), "", signed_names, payload]
    )
    scope = f"{timestamp[:8]}/{signer._region_name}/{signer._signing_name}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _signing_key(credentials.secret_key, timestamp[:8], signer._region_name, signer._signing_name)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed_names}, "
        f"Signature={signature}"
    )
    return added


@functools.lru_cache(maxsize=64)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@functools.lru_cache(maxsize=256)
def _host(scheme: str, netloc: str) -> str:
    return _host_from_url(f"{scheme}://{netloc}")  # botocore's own: lower case, no default port, no userinfo
