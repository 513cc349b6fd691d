"""Endpoint URLs: the one strict parser, the admin's trusted list, Label Studio's SSRF rules for the rest,
and the connection pin that keeps every socket on the storage's own endpoint.

Trust is decided on what the connection will really use. botocore hands the endpoint to urllib3, whose
``parse_url`` reads ``http://a:1\\@b:2`` as host ``a`` port 1 while ``urllib.parse`` sees host ``b`` port 2.
So an endpoint is accepted only in the plain form ``scheme://host[:port][/]`` on which urllib3,
``urllib.parse`` and this module's own grammar agree to the letter; everything two parsers could read
differently (backslashes, userinfo, control characters, percent-encoded or non-ASCII host bytes, paths,
queries) is refused with the reason. Then, as defence in depth, each client's connection pool only opens
sockets to the endpoint's host and port (:func:`pin_client_connections`), so a future parsing trick still
cannot reach another host.

Imports: Django settings (through ``conf``), urllib3, botocore and ``connection.config``; nothing else of the
plugin.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.utils.exceptions import LabelStudioAPIException, SsrfBlockedUrlError
from core.utils.io import validate_url_for_ssrf
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .. import conf
from .config import wrap_connections

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Longest endpoint worth parsing: a DNS name has at most 253 characters.
MAX_ENDPOINT_LENGTH = 300
# The whole accepted grammar. No nested quantifiers, and the input is length-capped first.
_ENDPOINT = re.compile(
    r"(?P<scheme>[A-Za-z]+)://(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(?::(?P<port>[0-9]{1,5}))?/?",
)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class EndpointError(ValueError):
    """An endpoint URL that cannot or may not be used; ``str()`` is safe to show (never echoes userinfo)."""


class EndpointPinError(EndpointError):
    """A connection was about to go to a host or port that is not the storage's endpoint."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str  # lower-case; IPv6 without brackets
    port: int

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The endpoint as given to botocore: the default port left out, no trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" + ("" if default else f":{self.port}")


def _refuse(reason: str) -> EndpointError:
    return EndpointError(
        f"The endpoint URL was refused: {reason}. Enter it as scheme://host[:port], "
        "e.g. https://s3.example.com or http://10.0.0.5:8000."
    )


def _why_not_plain(text: str) -> str | None:
    """The first construct that makes ``text`` more than scheme://host[:port][/], named for the user."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return "it contains control characters (such as a line break or tab)"
    if "\\" in text:
        return "it contains a backslash, which URL parsers read differently"
    if any(ord(ch) > 0x7E for ch in text):
        return "it contains non-ASCII characters (write an internationalised host name in its xn-- form)"
    if " " in text:
        return "it contains a space"
    if "@" in text:
        return "it contains user information (user@ or user:password@); put credentials in the key fields"
    if "%" in text:
        return "it contains percent-encoded characters"
    if "?" in text or "#" in text:
        return "it contains a query or fragment"
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "it has no scheme (http:// or https://)"
    if scheme.lower() not in _DEFAULT_PORTS:
        return f"the scheme must be http or https, not '{scheme[:10]}'"
    if "/" in rest.rstrip("/"):
        return "it has a path after the host; only scheme://host[:port] is supported"
    if rest.endswith("//"):
        return "it ends with more than one slash"
    return None


def parse(url: object) -> Endpoint:
    """The endpoint's scheme, host and port, or EndpointError saying what was refused and why.

    Accepted only where urllib3 (which opens the connection), ``urllib.parse`` and this grammar read the
    same scheme, host and port.
    """
    if not isinstance(url, str):
        raise _refuse("it is not text")
    text = url.strip(" ")
    if not text:
        raise _refuse("it is empty")
    if len(text) > MAX_ENDPOINT_LENGTH:
        raise _refuse(f"it is longer than {MAX_ENDPOINT_LENGTH} characters")
    reason = _why_not_plain(text)
    if reason:
        raise _refuse(reason)
    match = _ENDPOINT.fullmatch(text)
    if not match:
        raise _refuse("the host must be a DNS name, an IPv4 address or a bracketed IPv6 address")
    scheme = match["scheme"].lower()
    raw_host = match["host"]
    if raw_host.startswith("["):
        try:
            address = ipaddress.IPv6Address(raw_host[1:-1])
        except ValueError:
            raise _refuse("the bracketed IPv6 address is not valid") from None
        host = str(address)
    else:
        if raw_host.endswith("."):
            # A trailing dot is another spelling of the same name for DNS, but not for a trust list.
            raise _refuse("the host name ends with a dot")
        host = raw_host.lower()
        if not all(_LABEL.fullmatch(label) for label in host.split(".")):
            raise _refuse("the host name is not valid (labels of letters, digits and inner hyphens)")
        if host.replace(".", "").isdigit():
            try:
                canonical = str(ipaddress.IPv4Address(host))
            except ValueError:
                raise _refuse("the IPv4 address is not valid") from None
            if canonical != host:
                raise _refuse("the IPv4 address is written in an unusual form")
    port = int(match["port"]) if match["port"] is not None else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise _refuse("the port must be between 1 and 65535")
    endpoint = Endpoint(scheme, host, port)
    # The parsers the connection and the standard library use must see exactly the same origin.
    try:
        seen_by_urllib3 = parse_url(text)
        seen_by_stdlib = urlsplit(text)
        stdlib_port = seen_by_stdlib.port
    except (LocationParseError, ValueError):
        raise _refuse("URL parsers cannot read it") from None
    for scheme_seen, host_seen, port_seen in (
        (seen_by_urllib3.scheme, seen_by_urllib3.host, seen_by_urllib3.port),
        (seen_by_stdlib.scheme, seen_by_stdlib.hostname, stdlib_port),
    ):
        host_seen = (host_seen or "").lower().strip("[]")
        if host_seen and ":" in host_seen:
            host_seen = str(ipaddress.IPv6Address(host_seen))
        if (scheme_seen or "").lower() != scheme or host_seen != host or (port_seen or _DEFAULT_PORTS[scheme]) != port:
            raise _refuse("URL parsers read it differently")
    return endpoint


def origin(url: str) -> str:
    """Canonical ``scheme://host:port`` of an endpoint URL; EndpointError if it is not a plain one."""
    return parse(url).origin


def normalize(url: str) -> str:
    """The endpoint as stored and given to botocore: canonical case, no default port, no trailing slash."""
    return parse(url).url


def display(url: object) -> str:
    """An endpoint as it may appear in a message or a log: its origin, or a placeholder if it is not plain."""
    try:
        return parse(url).url
    except EndpointError:
        return "the endpoint"


def trusted_origins() -> set[str]:
    trusted = set()
    for item in conf.trusted_endpoints():
        try:
            trusted.add(origin(item))
        except EndpointError:
            continue
    return trusted


def is_trusted(url: str) -> bool:
    """True when the admin listed this endpoint's origin in CORTX_TRUSTED_ENDPOINTS."""
    try:
        wanted = origin(url)
    except EndpointError:
        return False
    return wanted in trusted_origins()


def needs_ssrf_guard(url: str) -> bool:
    return conf.ssrf_protection_enabled() and not is_trusted(url)


def check_ssrf(url: str) -> None:
    """Apply Label Studio's SSRF check to an untrusted endpoint, with a message that names the setting."""
    shown = parse(url).url
    if not needs_ssrf_guard(url):
        return
    try:
        validate_url_for_ssrf(shown, block_local_urls=True)
    except SsrfBlockedUrlError:
        raise EndpointError(
            f"Endpoint {shown} resolves to a private or loopback address, which Label Studio's SSRF protection "
            "blocks. If this is your organisation's object store, ask your Label Studio admin to add "
            f"{shown} to CORTX_TRUSTED_ENDPOINTS."
        ) from None
    except LabelStudioAPIException:
        # Raised when the host name cannot be resolved.
        raise EndpointError(f"Cannot resolve the host of endpoint {shown}. Check the host name.") from None


# --- the connection pin ---------------------------------------------------------------------------
class _PinnedConnectionMixin:
    """Refuse to open a socket to anything but the pinned host and port (set per client subclass)."""

    _cortx_pin: tuple[str, int, bool] = ("", 0, False)

    def _new_conn(self):
        host, port, subdomains = self._cortx_pin
        seen = (self.host or "").lower().strip("[]").rstrip(".")
        if ":" in seen:
            try:
                seen = str(ipaddress.IPv6Address(seen))
            except ValueError:
                pass
        host_ok = seen == host or (subdomains and seen.endswith("." + host))
        if not host_ok or self.port != port:
            raise EndpointPinError("A connection to a host or port other than this storage's endpoint was refused.")
        return super()._new_conn()


def pin_client_connections(client, endpoint_url: str, *, virtual_hosts: bool = False) -> None:
    """Make ``client`` open sockets only to ``endpoint_url``'s host and port.

    Works on the connection pool classes botocore's http session uses, on top of Label Studio's SSRF guard
    when that one is installed (its connection classes become the base). ``virtual_hosts`` also allows
    ``<bucket>.<host>``, the addressing style where buckets are subdomains of the endpoint.
    """
    endpoint = parse(endpoint_url)
    wrap_connections(
        client, _PinnedConnectionMixin, "CortxPinned", {"_cortx_pin": (endpoint.host, endpoint.port, virtual_hosts)}
    )
