"""Storage secrets at rest: the keys, the ciphertext format, and the model field that writes it.

This module owns how a CORTX storage's access key ID, secret access key and session token are kept
in the database: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, i.e. authenticated) under
``CORTX_SECRETS_KEY``, stored as ``cortx-enc:v1:<token>``. Nothing else encrypts or decrypts.

* Keys: ``CORTX_SECRETS_KEY`` is a comma-separated list of Fernet keys. The first encrypts; every
  key decrypts, so an admin rotates by putting a new key first and running
  ``cortx_rotate_secrets``. Without the setting a key is derived from Django's ``SECRET_KEY``
  (HKDF-SHA256), which a system check warns about. The derived keys (of ``SECRET_KEY`` and
  ``SECRET_KEY_FALLBACKS``) always stay *decrypt-only* fallbacks, so setting ``CORTX_SECRETS_KEY``
  on an installation that ran without it keeps its storages readable until they are rotated.
* Values stay ciphertext on model instances loaded from (or saved to) the database; ``reveal()``
  turns them into plaintext only where a client is built. Plaintext passes through ``reveal()``
  unchanged: a storage built from a form (not yet saved) carries the secrets the user typed.
* Failures are ``SecretStoreError`` with a message naming ``CORTX_SECRETS_KEY`` and no key
  material. Keys are parsed at first use, never at import, so a bad setting cannot stop startup.

It imports only django (settings, the TextField base) and cryptography, plus ``conf`` which itself
imports only django.conf: migrations import it without loading the rest of the plugin.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

from .. import conf

SETTING = "CORTX_SECRETS_KEY"
# Versioned so that a later format (another cipher, a KMS) can tell its values from these.
PREFIX = "cortx-enc:v1:"
# Fixed HKDF parameters: changing either would make every secret stored under a derived key unreadable.
_HKDF_SALT = b"label-studio-cortx"
_HKDF_INFO = b"label-studio-cortx storage secrets v1"


class SecretStoreError(Exception):
    """Secrets cannot be encrypted or decrypted; ``str()`` names the setting and is safe to show."""


class SecretsKeyConfigError(SecretStoreError):
    """``CORTX_SECRETS_KEY`` (or, without it, ``SECRET_KEY``) cannot be used as a key."""


class SecretDecryptError(SecretStoreError):
    """A stored value was not encrypted under any of the configured keys (or was altered)."""


def derive_key(secret_key: str) -> bytes:
    """The Fernet key derived from a Django ``SECRET_KEY``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def using_derived_key() -> bool:
    """Whether secrets are encrypted under the ``SECRET_KEY``-derived key (no ``CORTX_SECRETS_KEY``)."""
    return not conf.secrets_keys()


def _secret_keys() -> tuple[str, ...]:
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or []
    return tuple(str(key) for key in [getattr(settings, "SECRET_KEY", ""), *fallbacks] if key)


@lru_cache(maxsize=8)
def _load(configured: tuple[str, ...], secret_keys: tuple[str, ...]) -> MultiFernet:
    # Cached per setting value (the arguments), so override_settings and a changed environment take
    # effect at once while the steady state costs no key parsing or HKDF per value.
    fernets = []
    for number, key in enumerate(configured, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError, binascii.Error):
            # Never echo the value: it is (meant to be) a key.
            position = f"key {number} of {len(configured)}" if len(configured) > 1 else "the key"
            raise SecretsKeyConfigError(
                f"{SETTING} is malformed: {position} is not a Fernet key (32 url-safe base64-encoded bytes, "
                'as printed by python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"). Ask your admin to correct it.'
            ) from None
    fernets.extend(Fernet(derive_key(secret_key)) for secret_key in secret_keys)
    if not fernets:
        raise SecretsKeyConfigError(
            f"Neither {SETTING} nor Django's SECRET_KEY is set: storage secrets cannot be encrypted."
        )
    return MultiFernet(fernets)


def _keys() -> MultiFernet:
    return _load(tuple(conf.secrets_keys()), _secret_keys())


def check_keys() -> None:
    """Raise ``SecretsKeyConfigError`` when the configured keys cannot be used."""
    _keys()


def is_encrypted(value: object) -> bool:
    """Whether ``value`` is a stored ciphertext (as opposed to plaintext, empty or None)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt(text: str) -> str:
    """``text`` encrypted under the first key, with the format prefix."""
    return PREFIX + _keys().encrypt(text.encode()).decode("ascii")


def reveal(value: str | None) -> str | None:
    """The plaintext of a stored value; plaintext, empty and None pass through.

    The keys are loaded even for a plaintext value, so that a malformed setting is reported when a
    storage is checked, before the form's secrets would fail to encrypt on save.
    """
    keys = _keys()
    if not is_encrypted(value):
        return value
    try:
        return keys.decrypt(value[len(PREFIX) :].encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretDecryptError(_decrypt_failure()) from None


def rotate(value: str | None) -> str | None:
    """``value`` re-encrypted under the first key (plaintext gets encrypted); empty and None pass through."""
    if not value:
        return value
    if not is_encrypted(value):
        return encrypt(value)
    try:
        return PREFIX + _keys().rotate(value[len(PREFIX) :].encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SecretDecryptError(_decrypt_failure()) from None


def _decrypt_failure() -> str:
    if using_derived_key():
        return (
            f"The stored credentials of this storage cannot be decrypted: {SETTING} is not set and the key "
            "derived from Django's SECRET_KEY does not open them (SECRET_KEY changed, or they were encrypted "
            f"under a {SETTING} key). Ask your admin to set {SETTING} to the key they were encrypted with "
            "(or SECRET_KEY_FALLBACKS to the previous SECRET_KEY), or re-enter this storage's access keys."
        )
    return (
        f"The stored credentials of this storage cannot be decrypted with the keys in {SETTING}: they were "
        f"encrypted with another key. Ask your admin to add that key to {SETTING} (after the current one), "
        "or re-enter this storage's access keys."
    )


class EncryptedTextField(models.TextField):
    """A TextField whose values are stored encrypted and stay ciphertext on the model instance.

    ``get_prep_value`` encrypts what is not encrypted yet, which covers ``save()``,
    ``QuerySet.update()`` and ``bulk_create``; values read from the database are not decrypted
    (no ``from_db_value``), so dumps, logs and copies of an instance never carry plaintext.
    Fernet is randomized: filtering on the plaintext of such a field never matches.
    """

    description = "Text stored encrypted (Fernet, CORTX_SECRETS_KEY)"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        # Empty values carry no secret: kept as they are, so "no session token" stays NULL/"".
        if value is None or value == "" or is_encrypted(value):
            return value
        return encrypt(value)

    def pre_save(self, model_instance, add):
        # Put the ciphertext on the instance too: after save() it holds what a fresh load would.
        value = self.get_prep_value(super().pre_save(model_instance, add))
        setattr(model_instance, self.attname, value)
        return value
