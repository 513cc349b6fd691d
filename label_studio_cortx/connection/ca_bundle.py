"""CA bundles pasted by users: repair, validate, and hand botocore a file path.

The legacy storage form only has one-line inputs, which turn a PEM's line breaks into spaces (or drop
them), so a bundle is rebuilt from its BEGIN/END markers before it is parsed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
import textwrap

from cryptography import x509

_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----")
# A bundle of a few hundred CA certificates stays far below these; they bound the parse of hostile input.
MAX_BUNDLE_CHARS = 1024 * 1024
MAX_CERTIFICATES = 500
_ALLOWED_BLOCKS = {"CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"}


class CABundleError(ValueError):
    """The text given as a CA bundle is not one or more PEM certificates."""


# Every client lookup builds its cache key from the storage's bundle (media proxying calls it per
# request): parse a given text once, not on every lookup. Errors are not cached.
@functools.lru_cache(maxsize=128)
def normalize(text: str | None) -> str:
    """Return a canonical PEM bundle, or '' for an empty value; raise CABundleError if malformed."""
    if not text or not text.strip():
        return ""
    if len(text) > MAX_BUNDLE_CHARS:
        raise CABundleError(f"CA bundle is larger than {MAX_BUNDLE_CHARS // 1024} KiB: paste only the CA certificates.")
    blocks = _blocks(text)
    if not blocks:
        raise CABundleError(
            "CA bundle is not PEM: paste the CA certificate text, from '-----BEGIN CERTIFICATE-----' "
            "to '-----END CERTIFICATE-----'."
        )
    pems = []
    for label, body in blocks:
        if label not in _ALLOWED_BLOCKS:
            raise CABundleError(
                f"CA bundle contains a '{label}' block: only CA certificates belong here (never a private key)."
            )
        b64 = re.sub(r"\s+", "", body)
        wrapped = "\n".join(textwrap.wrap(b64, 64))
        pems.append(f"-----BEGIN CERTIFICATE-----\n{wrapped}\n-----END CERTIFICATE-----\n")
    bundle = "".join(pems)
    try:
        x509.load_pem_x509_certificates(bundle.encode())
    except ValueError as exc:
        raise CABundleError(f"CA bundle could not be read as X.509 certificates ({exc}).") from None
    return bundle


def _blocks(text: str) -> list[tuple[str, str]]:
    """(label, body) of each BEGIN/END block, found in one left-to-right pass (no backtracking)."""
    blocks = []
    position = 0
    while match := _BEGIN.search(text, position):
        end_marker = f"-----END {match[1]}-----"
        end = text.find(end_marker, match.end())
        if end < 0:
            raise CABundleError(f"CA bundle has a '-----BEGIN {match[1]}-----' line without its END line.")
        blocks.append((match[1], text[match.end() : end]))
        if len(blocks) > MAX_CERTIFICATES:
            raise CABundleError(f"CA bundle holds more than {MAX_CERTIFICATES} certificates.")
        position = end + len(end_marker)
    return blocks


def bundle_path(bundle: str) -> str:
    """Write the bundle once to a file named by its hash and return the path (botocore wants a path)."""
    digest = hashlib.sha256(bundle.encode()).hexdigest()[:32]
    folder = os.path.join(tempfile.gettempdir(), "label-studio-cortx-ca")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{digest}.pem")
    if not os.path.exists(path):
        # Write then rename so that a concurrent worker never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(bundle)
        os.replace(tmp, path)
    return path
