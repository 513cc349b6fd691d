"""The Django app: registers the export-on-save signals, the scheduler's start and the secrets-key system check, and
parses botocore's S3 model once for the process's clients."""

import logging

from django.apps import AppConfig
from django.core import checks
from django.core.signals import request_started

from .connection import secrets as secret_store
from .connection.config import warm_up

logger = logging.getLogger(__name__)


class CortxStorageConfig(AppConfig):
    name = "label_studio_cortx"
    # Label Studio finds a task's storage link by accessor names matching '.*io_storages_'.
    label = "io_storages_cortx"
    verbose_name = "CORTX S3 storage"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Signals and the scheduler import the models, which Django allows only once the app registry is ready.
        # A real server's first request starts the scheduler (schedule.on_request_started), never a command.
        from . import schedule, signals  # noqa: F401

        request_started.connect(schedule.on_request_started, dispatch_uid="cortx-scheduler")
        checks.register(check_secrets_key, checks.Tags.security)
        # Web workers and RQ workers (whose jobs are forked from them) build S3 clients without parsing botocore's
        # model first; about 80 ms here instead of in a user's first sync or image.
        try:
            warm_up()
        except Exception:  # a cold first client is slower, not broken: the server must start
            logger.warning("Could not parse botocore's S3 model ahead of the first client", exc_info=True)


def check_secrets_key(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Warn (never fail: the server must still start) when storage secrets are not under an admin's key."""
    try:
        secret_store.check_keys()
    except secret_store.SecretStoreError as exc:
        # A Warning, not an Error: an Error would stop migrate and runserver, and the message already
        # reaches users at the first check or sync of a storage.
        return [checks.Warning(str(exc), id="io_storages_cortx.W002")]
    if secret_store.using_derived_key():
        return [
            checks.Warning(
                "CORTX_SECRETS_KEY is not set: CORTX storage secrets are encrypted with a key derived from "
                "SECRET_KEY, so anyone with SECRET_KEY and the database can read them, and changing SECRET_KEY "
                "(without SECRET_KEY_FALLBACKS) makes them unreadable.",
                hint='Set CORTX_SECRETS_KEY to a key from python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())" and run the cortx_rotate_secrets management command.',
                id="io_storages_cortx.W001",
            )
        ]
    return []
