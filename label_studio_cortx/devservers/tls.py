"""Private-CA TLS material for the test S3 endpoints.

CORTX v1 ships its own client CA (``/etc/ssl/stx-s3-clients/s3/ca.crt``) and users are told to pass it as
``verify=<ca.crt>``. To exercise that code path for real, every HTTPS test endpoint gets a server certificate
issued by a throw-away ``trustme`` CA; the CA PEM is handed to the client, never installed system-wide, so a
client that forgets to pass it fails certificate verification exactly as it would against a real CORTX.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

# The endpoints only ever bind to the loopback interface; both spellings are in the SAN list so clients may use
# either ``https://127.0.0.1:PORT`` or ``https://localhost:PORT``.
DEFAULT_HOSTNAMES: tuple[str, ...] = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TLSFiles:
    """Paths (and the CA text) of one server's TLS material, all written below one directory."""

    ca_pem: str
    """The issuing CA certificate in PEM form (what a user would paste into a "CA bundle" field)."""
    ca_path: str
    """File holding ``ca_pem`` (what ``verify=`` / ``AWS_CA_BUNDLE`` expect)."""
    cert_path: str
    """Server certificate chain (leaf first)."""
    key_path: str
    """Server private key (unencrypted PEM)."""

    def server_context(self) -> ssl.SSLContext:
        """An ``SSLContext`` for a server socket presenting this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """An ``SSLContext`` for a client that trusts only this private CA (hostname checks stay on)."""
        return ssl.create_default_context(cafile=self.ca_path)


def issue_server_tls(
    directory: str | Path,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    *,
    ca: trustme.CA | None = None,
    prefix: str = "server",
) -> TLSFiles:
    """Create (or reuse) a private CA, issue a server certificate for ``hostnames`` and write it all to disk.

    Files are written (not kept in memory only) because moto's server takes ``--ssl-cert``/``--ssl-key`` paths
    and botocore's ``verify`` takes a CA *file*. A fresh CA per endpoint is the default so that one endpoint's CA
    never validates another's certificate; pass ``ca`` to share one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = ca or trustme.CA(organization_name="label-studio-cortx test CA")
    cert = ca.issue_cert(*hostnames)

    ca_path = directory / f"{prefix}-ca.pem"
    cert_path = directory / f"{prefix}-cert.pem"
    key_path = directory / f"{prefix}-key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    # Leaf first, then any intermediates, as OpenSSL's load_cert_chain expects.
    with open(cert_path, "wb") as fh:
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(key_path))
    # The key is only for a loopback test server, but there is no reason to leave it world-readable.
    key_path.chmod(0o600)

    return TLSFiles(
        ca_pem=ca.cert_pem.bytes().decode("ascii"),
        ca_path=str(ca_path),
        cert_path=str(cert_path),
        key_path=str(key_path),
    )
