"""Endpoint URLs: parsing, the admin's trusted list, and Label Studio's SSRF rules for the rest."""

from __future__ import annotations

from urllib.parse import urlsplit

from . import conf

_DEFAULT_PORTS = {"http": 80, "https": 443}


class EndpointError(ValueError):
    """An endpoint URL that cannot or may not be used."""


def origin(url: str) -> str:
    """Canonical ``scheme://host:port`` of a URL; raise EndpointError if it is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"Endpoint '{url}' is not a valid URL ({exc}).") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise EndpointError(
            f"Endpoint '{url}' must be an http:// or https:// URL with a host, e.g. https://s3.example.com:443."
        )
    return f"{scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[scheme]}"


def normalize(url: str) -> str:
    """Strip surrounding blanks and a trailing slash; the URL is validated on the way."""
    origin(url)
    return url.strip().rstrip("/")


def is_trusted(url: str) -> bool:
    """True when the admin listed this endpoint's origin in CORTX_TRUSTED_ENDPOINTS."""
    try:
        wanted = origin(url)
    except EndpointError:
        return False
    trusted = set()
    for item in conf.trusted_endpoints():
        try:
            trusted.add(origin(item))
        except EndpointError:
            continue
    return wanted in trusted


def needs_ssrf_guard(url: str) -> bool:
    return conf.ssrf_protection_enabled() and not is_trusted(url)


def check_ssrf(url: str) -> None:
    """Apply Label Studio's SSRF check to an untrusted endpoint, with a message that names the setting."""
    if not needs_ssrf_guard(url):
        return
    from core.utils.exceptions import LabelStudioAPIException, SsrfBlockedUrlError
    from core.utils.io import validate_url_for_ssrf

    try:
        validate_url_for_ssrf(url, block_local_urls=True)
    except SsrfBlockedUrlError:
        raise EndpointError(
            f"Endpoint {url} resolves to a private or loopback address, which Label Studio's SSRF protection "
            "blocks. If this is your organisation's object store, ask your Label Studio admin to add "
            f"{_display_origin(url)} "
            "to CORTX_TRUSTED_ENDPOINTS."
        ) from None
    except LabelStudioAPIException as exc:
        # Raised when the host name cannot be resolved.
        raise EndpointError(
            f"Cannot resolve the host of endpoint {url}: {_detail(exc)}. Check the host name."
        ) from None


def _display_origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _detail(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return str(detail or exc)
